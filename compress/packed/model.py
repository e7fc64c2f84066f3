"""Pack a StackedHourglass into an ``.hgz`` file and load it back as the identical network.

The header holds the format name, the model config (which rebuilds every tensor's name and shape), meta,
lineage and the per-tensor entries of ``compress.packed.codec``; the payload holds the coded tensors.
``load_model`` reads ``.pt`` checkpoints and ``.hgz`` files alike and returns ``(model, CheckpointInfo)``,
so evaluation, export, inspection and the runner accept either.

HashedNets layers are recognised from the lineage: the last ``hash`` step's ``ratio`` and ``seed`` give
each conv's seed and bucket count (``hashing.layer_seed``, ``hashing.bucket_count``), and a layer is stored
as buckets + seed only if they rebuild its weight bit for bit.
"""
from __future__ import annotations

import datetime
import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from compress.errors import HGCError
from compress.io import sha256_file
from compress.nets import checkpoint
from compress.nets.config import HourglassConfig
from compress.nets.hourglass import StackedHourglass
from compress.packed import codec, coders, format as container, hashing
from compress.packed.compact import FLOATS, compact_floats
from compress.packed.stages import pack_sizes, pack_stages

FORMAT = "hgc-packed/1"
CODER_CHOICES = (*coders.NAMES, codec.BEST)
DEFAULT_FLOATS = "fp16"  # folded fp16 floats: 13 % fewer bytes, same PCKh (compact.py docstring)
DEFAULT_CODER = "ans"  # smallest on hg2-128's clustered layers; decodes in milliseconds (README table)
HASH_OP = "hash"


@dataclass
class PackReport:
    """What ``pack_model`` wrote: bytes on disk, bits per weight, and how each tensor was stored."""

    path: str
    bytes: int
    coder: str
    weights: int
    bits_per_weight: float
    fp32_bytes: int
    kinds: dict[str, int]
    layers: list[dict[str, Any]] = field(default_factory=list)
    compact: dict[str, Any] = field(default_factory=dict)
    block_bytes: int = 0  # the compressed float block (the size breakdown needs it)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (without the per-layer rows); ``sizes``, ``stages``: see ``packed.stages``."""
        sizes = pack_sizes(self.layers, self.block_bytes, self.bytes) if self.layers else {}
        return {"path": self.path, "bytes": self.bytes, "coder": self.coder, "weights": self.weights,
                "bits_per_weight": self.bits_per_weight, "fp32_bytes": self.fp32_bytes,
                "sizes": sizes, "stages": pack_stages(sizes) if sizes else {},
                "ratio_vs_fp32_tensors": self.fp32_bytes / self.bytes if self.bytes else None, "kinds": self.kinds,
                "compact": self.compact}


def _keys_digest(state: dict[str, torch.Tensor]) -> str:
    text = "\n".join(f"{k}:{tuple(v.shape)}:{v.dtype}" for k, v in state.items())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def hashed_layers(state: dict[str, torch.Tensor], lineage: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """``{tensor name: (seed, buckets)}`` the last ``hash`` step of ``lineage`` would have used, per conv weight."""
    step = next((s for s in reversed(lineage) if isinstance(s, dict) and s.get("op") == HASH_OP), None)
    params = (step or {}).get("params") or {}
    if not isinstance(params.get("ratio"), (int, float)) or not isinstance(params.get("seed"), int):
        return {}
    return {name: (hashing.layer_seed(params["seed"], name.rpartition(".")[0]),
                   hashing.bucket_count(t.numel(), float(params["ratio"])))
            for name, t in state.items() if name.endswith(".weight") and t.dim() == 4}


def _check_model(model: Any, where: str) -> HourglassConfig:
    config = checkpoint.recorded_config(model, where)
    for name, tensor in model.state_dict().items():
        if tensor.dtype not in (torch.float32, torch.int64):
            raise HGCError(f"{where}: tensor {name!r} is {tensor.dtype}; pack stores float32 models "
                           "(quantized models ship as ONNX)")
    return config


def _canonical_state(model: StackedHourglass, config: HourglassConfig) -> dict[str, torch.Tensor]:
    """The model's tensors in the order a model rebuilt from ``config`` lists them (what unpacking meets)."""
    state = model.state_dict()
    return {name: state[name] for name in StackedHourglass(config).state_dict()}


def _encode(state: dict[str, torch.Tensor], coder: str, lineage: list[dict[str, Any]] | None) -> codec.Encoded:
    if coder not in CODER_CHOICES:
        raise HGCError(f"coder {coder!r}: expected one of {', '.join(CODER_CHOICES)}")
    return codec.encode_state(state, coder, hashed_layers(state, lineage or []))


def pack_model(model: StackedHourglass, path: str | os.PathLike, *, meta: dict[str, Any] | None = None,
               lineage: list[dict[str, Any]] | None = None, coder: str = DEFAULT_CODER, floats: str = DEFAULT_FLOATS,
               fold_norms: bool = True) -> PackReport:
    """Write ``model`` as an ``.hgz`` file (atomically) and check that it unpacks to identical tensors.

    First the model is made cheap to store, in place (``compact.compact_floats``: BatchNorm statistics
    folded into scale and shift with ``fold_norms``, every float rounded to float16 with ``floats='fp16'``),
    so the file holds exactly the changed model; ``floats='exact', fold_norms=False`` stores it as it is.

    ``coder`` codes the symbol streams (``best``: the smallest coder per stream). Refuses, before
    writing, a model whose tensors are not float32/int64 or whose config does not rebuild it.
    """
    if not str(path).endswith(container.SUFFIX):
        raise HGCError(f"{path}: a packed model's name must end in {container.SUFFIX}")
    if coder not in CODER_CHOICES:
        raise HGCError(f"coder {coder!r}: expected one of {', '.join(CODER_CHOICES)}")
    if floats not in FLOATS:
        raise HGCError(f"floats {floats!r}: expected one of {', '.join(FLOATS)}")
    config = _check_model(model, str(path))
    model.config = config
    compacted = compact_floats(model, floats=floats, fold_norms=fold_norms)
    state = _canonical_state(model, config)
    encoded = _encode(state, coder, lineage)
    header = {"format": FORMAT, "config": config.to_dict(), "meta": dict(meta or {}), "lineage": list(lineage or []),
              "keys": _keys_digest(state), "block": encoded.block_bytes, "tensors": encoded.entries,
              "coder": coder, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "code_version": checkpoint.code_version()}
    rebuilt, _ = codec.decode_state(encoded.entries, encoded.payload, encoded.block_bytes, state)
    for name, tensor in state.items():
        if not torch.equal(rebuilt[name], tensor.detach().cpu()):
            raise AssertionError(f"pack: tensor {name!r} does not round-trip (a codec bug)")
    size = container.write_file(path, header, encoded.payload)
    weights = sum(t.numel() for t in state.values() if t.is_floating_point())
    kinds: dict[str, int] = {}
    for entry in encoded.entries:
        kinds[entry[0]] = kinds.get(entry[0], 0) + 1
    return PackReport(path=str(path), bytes=size, coder=coder, weights=weights, bits_per_weight=8 * size / weights,
                      fp32_bytes=4 * weights, kinds=kinds, layers=encoded.layers, block_bytes=encoded.block_bytes,
                      compact=compacted.to_dict())


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The header of an ``.hgz`` file (checksum and version checked), tensors not decoded."""
    header, _ = container.read_file(path)
    return header


def _load_packed(path: str | os.PathLike) -> tuple[StackedHourglass, checkpoint.CheckpointInfo]:
    header, payload = container.read_file(path)
    if header.get("format") != FORMAT:
        raise HGCError(f"{path}: packed payload format {header.get('format')!r}, expected {FORMAT!r}")
    try:
        config = HourglassConfig.from_dict(header["config"])
        model = StackedHourglass(config)
    except (HGCError, KeyError, TypeError) as exc:
        raise HGCError(f"{path}: damaged header config ({exc})") from None
    reference = model.state_dict()
    if header.get("keys") != _keys_digest(reference):
        raise HGCError(f"{path}: its tensors do not match what this hgc builds from its config "
                       "(written by an incompatible version)")
    try:
        state, _ = codec.decode_state(header["tensors"], payload, int(header["block"]), reference)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise HGCError(f"{path}: damaged payload ({exc})") from None
    model.load_state_dict(state)
    model.eval()
    info = checkpoint.CheckpointInfo(config=config, meta=dict(header.get("meta") or {}),
                                     lineage=list(header.get("lineage") or []), path=str(path),
                                     sha256=sha256_file(path))
    return model, info


def load_model(path: str | os.PathLike) -> tuple[StackedHourglass, checkpoint.CheckpointInfo]:
    """A network from a ``.pt`` checkpoint or an ``.hgz`` packed file (by suffix), with its info."""
    if str(path).endswith(container.SUFFIX):
        return _load_packed(path)
    return checkpoint.load(path)


def compare_coders(model: StackedHourglass, lineage: list[dict[str, Any]] | None = None,
                   names: tuple[str, ...] = CODER_CHOICES) -> list[dict[str, Any]]:
    """Per coder: payload bytes, stream bytes, bits per weight, encode and decode seconds on ``model``.

    Each row is the whole model coded with that coder alone (per tensor, the codec keeps the smallest
    representation under it, so codebooks and the float block can differ slightly between rows);
    decoding is checked bit-exact. The report prints this table.
    """
    state = _canonical_state(model, checkpoint.recorded_config(model, "compare_coders"))
    weights = sum(t.numel() for t in state.values() if t.is_floating_point())
    rows = []
    for name in names:
        started = time.perf_counter()
        encoded = _encode(state, name, lineage)
        encode_s = time.perf_counter() - started
        rebuilt, decode_s = codec.decode_state(encoded.entries, encoded.payload, encoded.block_bytes, state)
        exact = all(torch.equal(rebuilt[k], v) for k, v in state.items())
        streams = len(encoded.payload) - encoded.block_bytes
        rows.append({"coder": name, "payload_bytes": len(encoded.payload), "stream_bytes": streams,
                     "float_block_bytes": encoded.block_bytes,
                     "bits_per_weight": 8 * len(encoded.payload) / weights,
                     "encode_s": round(encode_s, 3), "decode_s": round(decode_s, 3), "exact": exact})
    return rows
