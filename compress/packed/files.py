"""``hgc pack`` and ``hgc unpack`` as Python functions: checkpoint → ``.hgz`` → checkpoint or ONNX.

Kept apart from ``compress.packed.model`` because unpacking to ONNX goes through ``compress.export``,
which itself reads ``.hgz`` files through ``compress.packed.model``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from compress.errors import HGCError
from compress.export import export_onnx
from compress.io import check_output
from compress.nets import checkpoint
from compress.packed.format import SUFFIX
from compress.packed.model import DEFAULT_CODER, DEFAULT_FLOATS, PackReport, compare_coders, load_model, pack_model


@dataclass
class PackFileResult:
    """The written file's report and, when asked for, the coder comparison rows."""

    report: PackReport
    coders: list[dict[str, Any]] = field(default_factory=list)


def pack_file(model_path: str, out: str, *, coder: str = DEFAULT_CODER, compare: bool = False,
              floats: str = DEFAULT_FLOATS, fold_norms: bool = True) -> PackFileResult:
    """``hgc pack``: an hgc checkpoint (``.pt``) written as a packed ``.hgz`` (checked to unpack identically).

    ``floats`` and ``fold_norms`` as in ``pack_model``: by default the file holds the model with BatchNorm
    statistics folded and floats rounded to float16 (``floats='exact', fold_norms=False``: the checkpoint as is).

    ``compare`` also codes the model with every coder and returns the table (bytes, decode seconds).
    """
    if model_path.endswith(".onnx"):
        raise HGCError(f"{model_path}: an ONNX file (perhaps already quantized); hgc pack takes an hgc checkpoint (.pt)")
    if model_path.endswith(SUFFIX):
        raise HGCError(f"{model_path}: already packed")
    if not out.endswith(SUFFIX):
        raise HGCError(f"{out}: the output name must end in {SUFFIX}")
    check_output(out)
    model, info = checkpoint.load(model_path)
    params = {"coder": coder, "floats": floats, "fold_norms": fold_norms}
    lineage = [*info.lineage, {"op": "pack", "params": params, "parent_sha256": info.sha256}]
    report = pack_model(model, out, meta=info.meta, lineage=lineage, coder=coder, floats=floats, fold_norms=fold_norms)
    return PackFileResult(report, compare_coders(model, info.lineage) if compare else [])


@dataclass
class UnpackResult:
    """What ``unpack_file`` wrote."""

    path: str
    bytes: int
    kind: str


def unpack_file(packed: str, out: str, *, data: str = "synthetic:val") -> UnpackResult:
    """``hgc unpack``: an ``.hgz`` back to a checkpoint (``.pt``, identical tensors) or an fp32 ONNX file.

    The ONNX export is checked against PyTorch on crops of ``data`` like ``hgc export``. A damaged file
    is refused before anything is written.
    """
    if not packed.endswith(SUFFIX):
        raise HGCError(f"{packed}: expected a packed model ({SUFFIX})")
    if out.endswith(".pt"):
        check_output(out)
        model, info = load_model(packed)
        checkpoint.save(model, out, meta=info.meta,
                        lineage=[*info.lineage, {"op": "unpack", "params": {}, "parent_sha256": info.sha256}])
        return UnpackResult(out, os.path.getsize(out), "checkpoint")
    if out.endswith(".onnx"):
        load_model(packed)  # a damaged file fails here, before the exporter runs
        result = export_onnx(packed, out, dynamic_batch=True, data=data)
        return UnpackResult(result.path, result.bytes, "onnx")
    raise HGCError(f"{out}: unpack writes a checkpoint (.pt) or an ONNX file (.onnx)")
