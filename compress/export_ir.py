"""Export to OpenVINO IR (``.xml`` + ``.bin``) with a parity check against PyTorch and the hgc metadata.

The network goes through the ONNX exporter first (``export_onnx``, itself checked against PyTorch in
onnxruntime), OpenVINO converts that file, and the IR is written with its weights compressed to fp16 by
default (``compress_weights``; computation stays in the precision hint, fp32 here). Before anything
appears at the output, the IR runs in OpenVINO with the fp32 hint on benchmark crops and must match
PyTorch's heatmaps within ``atol``. Both files are written in a temporary directory beside the output and
renamed into place (weights first, so an ``.xml`` never points at a missing ``.bin``).

The ``hgc.*`` metadata of the ONNX export (config, meta, lineage, input/output specs, parity) travels in the
IR's ``rt_info`` under ``hgc/<key>`` (``runtime_openvino.ir_metadata`` reads it back).
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from compress.data.crops import crops
from compress.errors import HGCError
from compress.export import DEFAULT_OPSET, ExportResult, export_onnx, source_model
from compress.io import sha256_file
from compress.onnx_meta import read_metadata
from compress.runtime_openvino import IR_SUFFIX, OpenVinoPredictor, import_openvino, ir_metadata

ATOL = 1e-4  # fp32 weights: the ONNX exporter's tolerance
ATOL_FP16_WEIGHTS = 5e-3  # fp16-compressed weights round each weight to 11 significant bits


def _write_ir(ov: Any, model: Any, directory: str, metadata: dict[str, Any], compress_weights: bool) -> str:
    """Save ``model`` with ``metadata`` as ``hgc/<key>`` rt_info into ``directory/model.xml`` (+ ``.bin``)."""
    for key, value in metadata.items():
        model.set_rt_info(value if isinstance(value, str) else json.dumps(value, sort_keys=True), ["hgc", key])
    path = os.path.join(directory, "model.xml")
    ov.save_model(model, path, compress_to_fp16=compress_weights)
    return path


def _place(directory: str, out: Path) -> None:
    """Move ``directory/model.{bin,xml}`` to ``out`` (.xml) and its .bin: weights first, so no .xml lacks them."""
    os.replace(os.path.join(directory, "model.bin"), out.with_suffix(".bin"))
    os.replace(os.path.join(directory, "model.xml"), out)


def save_ir(model: Any, out_path: str | os.PathLike, metadata: dict[str, Any], compress_weights: bool = False) -> int:
    """Write an ``openvino.Model`` as IR at ``out_path`` (+ ``.bin``) with ``hgc/<key>`` rt_info, atomically.

    Both files are written in a temporary directory beside the output and renamed into place; returns their
    total bytes. Used by quantizers whose artifact is an IR (``techniques/quantize/nncf_ov``).
    """
    out = Path(out_path)
    if out.suffix != IR_SUFFIX:
        raise HGCError(f"{out}: an OpenVINO IR name must end in .xml (its weights go to {out.stem}.bin)")
    scratch = tempfile.mkdtemp(prefix=f".{out.stem}.", dir=out.parent)
    try:
        _write_ir(import_openvino(), model, scratch, metadata, compress_weights)
        _place(scratch, out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return out.stat().st_size + out.with_suffix(".bin").stat().st_size


def export_openvino(model_or_checkpoint_path: Any, out_path: str | os.PathLike, *, compress_weights: bool = True,
                    dynamic_batch: bool = True, opset: int = DEFAULT_OPSET, parity_images: int = 8,
                    atol: float | None = None, data: str = "synthetic:val",
                    metadata: dict[str, Any] | None = None, onnx_file: str | None = None) -> ExportResult:
    """Export a checkpoint (or hourglass module) to OpenVINO IR and prove OpenVINO reproduces PyTorch.

    ``atol`` defaults to 1e-4 for fp32 weights and 5e-3 for fp16-compressed ones (max |OpenVINO − PyTorch|
    over every heatmap of every stack, fp32 hint). ``out_path`` must end in ``.xml``; the ``.bin`` goes
    beside it. A failed check writes nothing. ``onnx_file``: an hgc ONNX export of the same network to
    convert instead of exporting again (the parity check against PyTorch still decides).
    """
    started = time.perf_counter()
    out = Path(out_path)
    if out.suffix != IR_SUFFIX:
        raise HGCError(f"{out}: an OpenVINO IR name must end in .xml (its weights go to {out.stem}.bin)")
    if not out.parent.is_dir():
        raise HGCError(f"{out}: output directory {out.parent} does not exist")
    ov = import_openvino()
    atol = (ATOL_FP16_WEIGHTS if compress_weights else ATOL) if atol is None else atol
    model, _, _, _ = source_model(model_or_checkpoint_path)
    model = copy.deepcopy(model).cpu().float().eval()
    images = crops(data, model.config.input_size, parity_images, fewer_ok=True, purpose="export parity").images
    with torch.inference_mode():
        reference = model(torch.from_numpy(images)).numpy()
    scratch = tempfile.mkdtemp(prefix=f".{out.stem}.", dir=out.parent)
    try:
        onnx_path = onnx_file or export_onnx(model_or_checkpoint_path, os.path.join(scratch, "model.onnx"),
                                             opset=opset, dynamic_batch=dynamic_batch, parity_images=parity_images,
                                             data=data, metadata=metadata).path
        meta = {k: v for k, v in read_metadata(onnx_path).items() if k in
                ("format", "config", "meta", "lineage", "input", "output", "export", "quantization")}
        weights = "fp16-compressed" if compress_weights else "fp32"
        meta["export"] = {**meta.get("export", {}), "format": "openvino-ir", "weights": weights,
                          "openvino": ov.get_version(), "via": "ONNX (torch.onnx dynamo) → openvino.convert_model"}
        meta["lineage"] = [*meta.get("lineage", [])[:-1], {**(meta.get("lineage") or [{}])[-1], "params": {
            "format": "openvino", "compress_weights": compress_weights, "dynamic_batch": dynamic_batch}}]
        converted = ov.convert_model(onnx_path)
        rt_info = converted.get_rt_info()
        if "framework" in rt_info.keys():  # the ONNX metadata_props again: the hgc section replaces them
            del rt_info["framework"]
        ir_dir = os.path.join(scratch, "ir")
        os.mkdir(ir_dir)
        ir_path = _write_ir(ov, converted, ir_dir, meta, compress_weights)
        out_all = OpenVinoPredictor(ir_path, threads=None, precision="fp32").run_all(images)
        if out_all.shape != reference.shape:
            raise HGCError(f"export: OpenVINO output shape {out_all.shape} differs from PyTorch's {reference.shape}")
        diff = np.abs(out_all.astype(np.float64) - reference.astype(np.float64))
        max_diff = float("inf") if not np.all(np.isfinite(diff)) else float(diff.max())
        if not max_diff <= atol:
            raise HGCError(f"{out}: export parity failed: max |OpenVINO - PyTorch| = {max_diff:.3g} > atol {atol:g} "
                           f"on {len(images)} images of {data} ({weights} weights); nothing written")
        meta["parity"] = {"max_abs_diff": max_diff, "atol": atol, "images": len(images), "data": data,
                          "runtime": f"openvino {ov.get_version()} CPU, precision hint fp32"}
        _write_ir(ov, converted, ir_dir, {"parity": meta["parity"]}, compress_weights)
        _place(ir_dir, out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    size = out.stat().st_size + out.with_suffix(".bin").stat().st_size
    return ExportResult(path=str(out), opset=opset, dynamic_batch=dynamic_batch, max_abs_diff=max_diff,
                        parity_images=len(images), bytes=size, sha256=sha256_file(out),
                        seconds=time.perf_counter() - started,
                        metadata=ir_metadata(ov.Core().read_model(str(out))))
