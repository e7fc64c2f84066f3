"""Pieces both peer converters share: key pairs, the strict layout check and the tensor remap.

A converter describes a peer layout as a list of ``Pair(peer_key, our_key)``; one checker then reports
missing, unexpected and mis-shaped keys the same way for every peer, naming the layout it guessed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

import torch

from compress.errors import HGCError

BN_TENSORS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
OPTIONAL_SUFFIX = ".num_batches_tracked"  # absent in checkpoints saved before PyTorch 0.4; unused at inference
_SHOWN = 3
CONFIG_BUFFERS = ("normalize.",)  # built from config.input, not read from the peer


@dataclass(frozen=True)
class Pair:
    """One peer tensor and where it lands in our model; ``ours`` None means: unused by the peer, dropped.

    ``shape`` is the shape a dropped tensor must have (mapped tensors are checked against our model).
    """

    peer: str
    ours: str | None
    shape: tuple[int, ...] | None = None


def conv(peer: str, ours: str) -> list[Pair]:
    """A convolution with bias: weight and bias."""
    return [Pair(f"{peer}.{t}", f"{ours}.{t}") for t in ("weight", "bias")]


def norm(peer: str, ours: str) -> list[Pair]:
    """A BatchNorm2d: affine parameters, running statistics and the batch counter."""
    return [Pair(f"{peer}.{t}", f"{ours}.{t}") for t in BN_TENSORS]


def dropped_conv(peer: str, cout: int, cin: int, kernel: int = 1) -> list[Pair]:
    """A convolution the peer builds but never runs: checked for shape, then left out."""
    return [Pair(f"{peer}.weight", None, (cout, cin, kernel, kernel)), Pair(f"{peer}.bias", None, (cout,))]


def indices(keys: Iterable[str], pattern: str) -> list[int]:
    """Sorted distinct integers captured by ``pattern`` (one group) at the start of the keys."""
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in keys if (m := rx.match(k))})


def _listing(keys: list[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_SHOWN])
    return shown + (f", … (+{len(keys) - _SHOWN})" if len(keys) > _SHOWN else "")


def remap(state: dict[str, torch.Tensor], pairs: list[Pair], model: torch.nn.Module,
          layout: str) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """Check a peer state dict against ``pairs`` and our model; return (our state, dropped keys, filled keys).

    Missing or unexpected keys and wrong shapes raise one ``HGCError`` line that names ``layout`` (the
    guessed peer layout and the architecture read off it, e.g. "princeton layout (2 stacks, …)") and the
    first offending keys.
    """
    expected = {p.peer for p in pairs}
    if len(expected) != len(pairs):
        raise AssertionError(f"{layout}: the key map lists a peer key twice")
    ours = {k: v for k, v in model.state_dict().items() if not k.startswith(CONFIG_BUFFERS)}
    targets = [p.ours for p in pairs if p.ours is not None]
    if sorted(targets) != sorted(ours):
        unmapped = sorted(set(ours) - set(targets))
        raise AssertionError(f"{layout}: the key map misses model tensors, e.g. {unmapped[:3]}")
    missing = [p.peer for p in pairs if p.peer not in state and not p.peer.endswith(OPTIONAL_SUFFIX)]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_listing(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
        raise HGCError(f"guessed the {layout}, but {'; '.join(parts)}")
    out: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    filled: list[str] = []
    for pair in pairs:
        want = tuple(ours[pair.ours].shape) if pair.ours is not None else pair.shape
        if pair.peer not in state:  # an optional batch counter
            out[pair.ours] = torch.zeros_like(ours[pair.ours])
            filled.append(pair.peer)
            continue
        tensor = state[pair.peer]
        if not isinstance(tensor, torch.Tensor):
            raise HGCError(f"guessed the {layout}, but {pair.peer!r} is a {type(tensor).__name__}, "
                           "not a tensor")
        if tuple(tensor.shape) != want:
            raise HGCError(f"guessed the {layout}, but the shapes do not form that hourglass: "
                           f"{pair.peer!r} is {tuple(tensor.shape)}, expected {want}")
        if pair.ours is None:
            dropped.append(pair.peer)
        else:
            out[pair.ours] = tensor.detach().clone().to(ours[pair.ours].dtype)
    return out, dropped, filled
