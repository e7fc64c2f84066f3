"""Converters from the two public PyTorch hourglass codebases to hgc checkpoints.

``convert_checkpoint`` reads a peer file weights-only, infers the architecture from tensor names and
shapes, remaps every tensor onto ``StackedHourglass(config)`` and saves an hgc checkpoint whose
config (stem, input mean/std) makes the model produce the heatmaps the peer produced.
"""
from __future__ import annotations

import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

import torch

from compress.errors import HGCError, first_line
from compress.io import sha256_file
from compress.nets import checkpoint
from compress.nets.config import HourglassConfig, InputSpec
from compress.nets.convert import princeton, pytorch_pose
from compress.nets.convert.common import CONFIG_BUFFERS, remap
from compress.nets.hourglass import StackedHourglass

CONVERTERS: dict[str, ModuleType] = {princeton.NAME: princeton, pytorch_pose.NAME: pytorch_pose}
SOURCES: tuple[str, ...] = tuple(CONVERTERS)
_PREFIXES = ("model.module.", "module.model.", "module.", "model.")
_HGC_MARKERS = ("stem.", "stacks.", "merges.")


@dataclass
class ConvertResult:
    """What a conversion did: the rebuilt config, how many tensors moved and which were dropped."""

    path: str
    source: str
    config: HourglassConfig
    peer_tensors: int
    mapped: int
    dropped: list[str] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)
    prefix: str = ""
    parent_sha256: str = ""
    input_convention: str = ""

    def summary(self) -> str:
        """One line for the CLI: counts, architecture and the input the model expects."""
        c = self.config
        extra = f", filled {len(self.filled)} missing BN counters" if self.filled else ""
        return (f"{self.source} → {self.path}: {c.stacks} stacks, {c.features} features, depth {c.depth}, "
                f"{c.modules} block(s), {c.joints} joints; mapped {self.mapped} of {self.peer_tensors} tensors, "
                f"dropped {len(self.dropped)} unused{extra}; input mean {list(c.input.mean)} std {list(c.input.std)}")


def read_peer_state(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """The peer's tensors with any wrapper prefix removed, and that prefix; loads weights-only.

    Accepts ``{"state_dict": {...}, ...}`` (both trainers save that) or a bare state dict.
    """
    if not os.path.isfile(path):
        raise HGCError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found is None:
            raise HGCError(f"{path}: not a readable checkpoint (truncated or damaged?): the unpickler "
                           "stopped on bytes that are not a torch.save file") from None
        raise HGCError(f"{path}: refused to load: the file pickles a Python object ({found.group(1)}) beyond "
                       "plain tensors; if you trust it, re-save only its state_dict with torch.save") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        reason = first_line(exc)
        raise HGCError(f"{path}: not a readable checkpoint (truncated or damaged?): {reason}") from None
    if isinstance(payload, dict) and payload.get("format") == checkpoint.FORMAT:
        raise HGCError(f"{path}: already an hgc checkpoint; nothing to convert")
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else payload
    if not isinstance(state, dict) or not state:
        raise HGCError(f"{path}: expected a state dict (or a dict with 'state_dict'), got {type(state).__name__}")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise HGCError(f"{path}: 'state_dict' holds non-tensor entries, e.g. {bad[0]!r}")
    return _strip_prefix(state)


def _strip_prefix(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """Remove the DataParallel/Trainer prefixes (``module.``, ``model.module.``) every key shares."""
    removed = ""
    while True:
        prefix = next((p for p in _PREFIXES if all(k.startswith(p) for k in state)), None)
        if prefix is None:
            return state, removed
        state = {k[len(prefix):]: v for k, v in state.items()}
        removed += prefix


def guess_layout(keys: Sequence[str]) -> str | None:
    """Which peer's key names these are (``princeton`` / ``pytorch-pose``), ``hgc`` for ours, or None."""
    votes = {name: sum(k.startswith(module.MARKERS) for k in keys) for name, module in CONVERTERS.items()}
    votes["hgc"] = sum(k.startswith(_HGC_MARKERS) for k in keys)
    best = max(votes, key=lambda name: votes[name])
    return best if votes[best] else None


def convert_state(state: dict[str, torch.Tensor], source: str, *, input_size: int = 256,
                  mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                  ) -> tuple[StackedHourglass, dict[str, Any]]:
    """Rebuild the peer's network as ours from a prefix-free state dict; returns (model, report).

    The in-memory core of ``convert_checkpoint``; errors name the guessed layout and offending keys.
    """
    if source not in CONVERTERS:
        raise HGCError(f"--from: unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    peer = CONVERTERS[source]
    guessed = guess_layout(list(state))
    if guessed is None:
        raise HGCError(f"keys from neither the princeton nor the pytorch-pose layout (first keys: "
                       f"{', '.join(repr(k) for k in list(state)[:3])})")
    if guessed == "hgc":
        raise HGCError("these are hgc key names (stem./stacks.); load hgc checkpoints directly")
    if guessed != source:
        raise HGCError(f"--from {source}, but the keys look like the {guessed} layout "
                       f"(e.g. {next(k for k in state if k.startswith(CONVERTERS[guessed].MARKERS))!r}); "
                       f"use --from {guessed}")
    for name, values in (("--mean", mean), ("--std", std)):
        if values is not None and (len(values) != 3 or (name == "--std" and min(values) <= 0)):
            raise HGCError(f"{name}: expected 3 values (r g b){', each > 0' if name == '--std' else ''}, got {list(values)}")
    spec = InputSpec(mean=tuple(peer.DEFAULT_MEAN if mean is None else mean),
                     std=tuple(peer.DEFAULT_STD if std is None else std))
    try:
        config = peer.infer_config(state, input_size, spec)
        model = StackedHourglass(config)
    except HGCError as exc:
        text = str(exc)
        raise HGCError(text if text.startswith("guessed") else f"guessed the {source} layout, but {text}") from None
    layout = (f"{source} layout ({config.stacks} stacks, {config.features} features, depth {config.depth}, "
              f"{config.modules} block(s), {config.joints} joints)")
    ours, dropped, filled = remap(state, peer.key_pairs(config), model, layout)
    own = {k: v for k, v in model.state_dict().items() if k.startswith(CONFIG_BUFFERS)}
    model.load_state_dict({**ours, **own}, strict=True)
    model.eval()
    return model, {"mapped": len(ours) - len(filled), "dropped": dropped, "filled": filled,
                   "input_convention": peer.INPUT_CONVENTION}


def convert_checkpoint(path: str | os.PathLike, source: str, out: str | os.PathLike, *, input_size: int = 256,
                       mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> ConvertResult:
    """Convert a princeton or pytorch-pose checkpoint file into an hgc checkpoint at ``out``.

    So models people already trained enter recipes unchanged; lineage records op ``convert``.
    """
    state, prefix = read_peer_state(path)
    try:
        model, report = convert_state(state, source, input_size=input_size, mean=mean, std=std)
    except HGCError as exc:
        raise HGCError(f"{path}: {exc}") from None
    parent = sha256_file(path)
    config = model.config
    params = {"source": source, "file": Path(path).name, "prefix": prefix, "input_size": input_size,
              "mean": list(config.input.mean), "std": list(config.input.std),
              "dropped_unused": len(report["dropped"]), "input_convention": report["input_convention"]}
    meta = {"dataset": "external", "input_size": input_size, "source": source,
            "input_convention": report["input_convention"]}
    checkpoint.save(model, out, meta=meta, lineage=[{"op": "convert", "params": params, "parent_sha256": parent}])
    return ConvertResult(path=str(out), source=source, config=config, peer_tensors=len(state),
                         mapped=report["mapped"], dropped=report["dropped"], filled=report["filled"],
                         prefix=prefix, parent_sha256=parent, input_convention=report["input_convention"])
