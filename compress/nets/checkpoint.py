"""Self-describing checkpoints: config + tensors + meta + lineage in one weights-only ``.pt`` file.

Loading never unpickles a class (``torch.load(weights_only=True)``) and rebuilds the model from the
stored config alone; every way a file can be wrong becomes one ``HGCError`` line naming the file.
"""
from __future__ import annotations

import datetime
import functools
import hashlib
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import compress
from compress.errors import HGCError, first_line
from compress.io import atomic_path, sha256_file
from compress.nets.config import HourglassConfig
from compress.nets.hourglass import StackedHourglass
from compress.nets.widths import derive_widths

FORMAT = "hgc-checkpoint/1"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Package version plus a hash of the package's sources, so results from edited code are not reused."""
    digest = hashlib.sha256()
    root = Path(compress.__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return f"{compress.__version__}+{digest.hexdigest()[:10]}"


@dataclass
class CheckpointInfo:
    """Everything in a checkpoint except the tensors."""

    config: HourglassConfig
    meta: dict[str, Any] = field(default_factory=dict)
    lineage: list[dict[str, Any]] = field(default_factory=list)
    path: str = ""
    sha256: str = ""


def recorded_config(model: StackedHourglass, where: str) -> HourglassConfig:
    """The model's config with ``widths`` read off its module tree, checked to rebuild every tensor.

    A step that prunes channels needs no bookkeeping: the widths a rebuilt model must have are derived
    here; a model the config cannot describe (a tensor of a shape no width explains) is refused, naming
    the first mismatching tensor, before anything is written.
    """
    config = getattr(model, "config", None)
    if not isinstance(config, HourglassConfig):
        raise HGCError(f"{where}: expected a StackedHourglass with a config, got {type(model).__name__}")
    nominal = StackedHourglass(config.replace(widths={}))
    recorded = config.replace(widths=derive_widths(model, nominal))
    check_state_dict(StackedHourglass(recorded), model.state_dict(), f"{where}: refused to save")
    return recorded


def save(model: StackedHourglass, path: str | os.PathLike, meta: dict[str, Any] | None = None,
         lineage: list[dict[str, Any]] | None = None) -> None:
    """Write ``model`` atomically in the hgc-checkpoint/1 format (compress/ARCHITECTURE.md §Checkpoint format).

    ``config.widths`` is derived from the module tree (``recorded_config``) and set on the model too.
    """
    config = recorded_config(model, str(path))
    model.config = config
    meta = {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "code_version": code_version(), **(meta or {})}
    payload = {
        "format": FORMAT,
        "config": config.to_dict(),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "meta": meta,
        "lineage": list(lineage or []),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_payload(path: str | os.PathLike) -> dict[str, Any]:
    """The raw checkpoint dictionary, loaded weights-only; damaged or unsafe files are refused."""
    if not os.path.isfile(path):
        raise HGCError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = first_line(exc) if str(exc).strip() else "unsupported object"
        raise HGCError(f"{path}: refused to load: the file pickles Python objects beyond plain tensors ({first})") from None
    except (KeyError, IndexError, TypeError):  # what torch's unpickler raises on arbitrary bytes (a text file)
        raise HGCError(f"{path}: not a readable checkpoint (not a torch.save file)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        reason = first_line(exc)
        raise HGCError(f"{path}: not a readable checkpoint (truncated or damaged?): {reason}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise HGCError(f"{path}: not an hgc checkpoint (format {found!r}, expected {FORMAT!r}); "
                       "peer checkpoints go through `hgc convert`")
    for key in ("config", "state_dict"):
        if not isinstance(payload.get(key), dict):
            raise HGCError(f"{path}: checkpoint is missing its {key!r} mapping")
    return payload


def load(path: str | os.PathLike) -> tuple[StackedHourglass, CheckpointInfo]:
    """Rebuild the model from the stored config and load its tensors (strictly, shapes checked)."""
    payload = read_payload(path)
    try:
        config = HourglassConfig.from_dict(payload["config"])
        model = StackedHourglass(config)
    except HGCError as exc:
        raise HGCError(f"{path}: {exc}") from None
    check_state_dict(model, payload["state_dict"], str(path))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    info = CheckpointInfo(config=config, meta=dict(payload.get("meta") or {}),
                          lineage=list(payload.get("lineage") or []), path=str(path), sha256=sha256_file(path))
    return model, info


def check_state_dict(model: torch.nn.Module, state: dict[str, Any], where: str) -> None:
    """Compare tensors with what the config builds; name the first missing, extra or mis-shaped key."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first: {missing[0]!r})")
        if extra:
            parts.append(f"{len(extra)} unexpected (first: {extra[0]!r})")
        raise HGCError(f"{where}: tensors do not match the config: {', '.join(parts)}")
    for key, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise HGCError(f"{where}: state_dict[{key!r}] is not a tensor")
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise HGCError(f"{where}: tensor {key!r} has shape {tuple(tensor.shape)}, "
                           f"the config builds {tuple(expected[key].shape)}")
