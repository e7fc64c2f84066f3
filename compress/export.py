"""ONNX export with a parity check on real benchmark images and self-describing metadata.

The exported graph has one input and one output:

* ``image``: float32 N×3×S×S, RGB, values in [0, 1], NCHW (S = the config's ``input_size``); any
  mean/std normalisation runs inside the graph (recorded in the ``hgc.input`` metadata).
* ``heatmaps``: float32 N×stacks×J×S/4×S/4, one heatmap per joint and stack (the last stack is the
  prediction), joints in MPII order.

N is 1, or symbolic (``batch``) with ``dynamic_batch``. The exporter is PyTorch's ``torch.export``-based
one (``dynamo=True``, needs ``onnxscript``): the legacy TorchScript exporter is deprecated in torch ≥ 2.9.
Nothing is written anywhere but a temporary file beside the output, which becomes the output only after
onnxruntime has reproduced PyTorch's heatmaps within ``atol``.
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import onnx
import torch

from compress.data.crops import crops
from compress.errors import HGCError, first_line
from compress.evaluate import evaluate
from compress.io import atomic_path, sha256_file
from compress.nets.config import HourglassConfig
from compress.onnx_meta import FORMAT, GRAPH_DOC, INPUT_NAME, OUTPUT_NAME, metadata_props, read_metadata
from compress.packed.model import load_model
from compress.runtime import OrtPredictor, open_session

__all__ = ["DEFAULT_OPSET", "FORMAT", "ExportResult", "export_onnx", "read_metadata"]
DEFAULT_OPSET = 18  # the exporter's native opset; 17 works through onnx's version converter


@dataclass
class ExportResult:
    """What ``export_onnx`` wrote and how closely onnxruntime matched PyTorch."""

    path: str
    opset: int
    dynamic_batch: bool
    max_abs_diff: float
    parity_images: int
    bytes: int
    sha256: str
    seconds: float
    metadata: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Mute the exporter's known chatter for the duration of one export (loggers restored afterwards).

    torch.onnx logs opset conversion and missing-torchvision notices, onnxscript logs its C-API fallback,
    and torch's pytree raises a FutureWarning about its own ``LeafSpec``; none concern the user.
    """
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _source(model_or_path: Any) -> tuple[torch.nn.Module, dict[str, Any], list[dict[str, Any]], str | None]:
    """(model, meta, lineage, parent sha256) from a checkpoint or ``.hgz`` path, or an in-memory hourglass."""
    if isinstance(model_or_path, (str, os.PathLike)):
        model, info = load_model(model_or_path)  # a checkpoint or a packed .hgz
        return model, dict(info.meta), list(info.lineage), info.sha256
    if isinstance(model_or_path, torch.nn.Module) and isinstance(getattr(model_or_path, "config", None),
                                                                  HourglassConfig):
        return model_or_path, {}, [], None
    raise HGCError(f"export: expected a checkpoint path or a StackedHourglass, got {type(model_or_path).__name__}")


def source_model(model_or_path: Any) -> tuple[torch.nn.Module, dict[str, Any], list[dict[str, Any]], str | None]:
    """(model, meta, lineage, parent sha256) of what an exporter was given: the other exporters' entry point."""
    return _source(model_or_path)


def _to_onnx(model: torch.nn.Module, size: int, opset: int, dynamic_batch: bool) -> Any:
    """Trace ``model`` with torch.export and translate it to an ONNX ``ModelProto`` (in memory only)."""
    example = torch.rand(2 if dynamic_batch else 1, 3, size, size)  # batch 2: avoid 0/1 specialisation
    shapes = {INPUT_NAME: {0: torch.export.Dim("batch", min=1)}} if dynamic_batch else None
    with _quiet_exporter():
        try:
            program = torch.onnx.export(model, (example,), None, dynamo=True, input_names=[INPUT_NAME],
                                        output_names=[OUTPUT_NAME], opset_version=opset, dynamic_shapes=shapes,
                                        external_data=False, verbose=False, optimize=True)
        except Exception as exc:  # the exporter raises many types; keep the first line for the user
            reason = first_line(exc)
            raise HGCError(f"export: torch.onnx could not export the model: {reason}") from None
    proto = program.model_proto
    _strip_debug_info(proto)
    return proto


def _strip_debug_info(proto: Any) -> None:
    """Drop per-node debug annotations (FX node text, module paths): they can outweigh a small net's weights.

    Bytes on disk are a measured quantity here, so the artifact carries weights and graph only.
    """
    graph = proto.graph
    for item in [*graph.node, *graph.value_info, *graph.input, *graph.output, *graph.initializer]:
        del item.metadata_props[:]
        item.doc_string = ""
    del graph.metadata_props[:]


def _max_abs_diff(session: Any, reference: np.ndarray, images: np.ndarray, dynamic_batch: bool) -> float:
    """Largest |onnxruntime − PyTorch| over every heatmap of every stack (NaN counts as infinite)."""
    step = len(images) if dynamic_batch else 1
    out = np.concatenate([session.run([OUTPUT_NAME], {INPUT_NAME: images[i:i + step]})[0]
                          for i in range(0, len(images), step)])
    if out.shape != reference.shape:
        raise HGCError(f"export: onnxruntime output shape {out.shape} differs from PyTorch's {reference.shape}")
    diff = np.abs(out.astype(np.float64) - reference.astype(np.float64))
    return float("inf") if not np.all(np.isfinite(diff)) else float(diff.max())


def export_onnx(model_or_checkpoint_path: Any, out_path: str | os.PathLike, *, dynamic_batch: bool = False,
                opset: int = DEFAULT_OPSET, parity_images: int = 8, atol: float = 1e-4, data: str = "synthetic:val",
                metadata: dict[str, Any] | None = None, eval_limit: int | None = None) -> ExportResult:
    """Export a checkpoint (or hourglass module) to ONNX and prove onnxruntime reproduces it.

    The file appears at ``out_path`` only if the fp32 max-abs difference on ``parity_images`` crops of
    ``data`` is ≤ ``atol``; otherwise ``HGCError`` reports the figure and nothing is left behind.
    ``metadata`` entries are merged into the stored meta (e.g. a known ``pckh``); with ``eval_limit``
    the exported file itself is scored on that many samples of ``data`` and the PCKh stored as
    ``hgc.accuracy``.
    """
    started = time.perf_counter()
    out = Path(out_path)
    if out.suffix != ".onnx":
        raise HGCError(f"{out}: the output name must end in .onnx")
    if not out.parent.is_dir():
        raise HGCError(f"{out}: output directory {out.parent} does not exist")
    if opset < 17:
        raise HGCError(f"--opset {opset}: hgc exports opset 17 or newer")
    source, meta, lineage, parent = _source(model_or_checkpoint_path)
    model = copy.deepcopy(source).cpu().float().eval()
    config: HourglassConfig = model.config
    meta.update(metadata or {})
    # the first crops of data (fewer if it has fewer); a bad --data fails before the slow export
    images = crops(data, config.input_size, parity_images, fewer_ok=True, purpose="export parity").images
    lineage.append({"op": "export", "params": {"format": "onnx", "opset": opset, "dynamic_batch": dynamic_batch},
                    "parent_sha256": parent})
    proto = _to_onnx(model, config.input_size, opset, dynamic_batch)
    produced = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if produced != opset:
        raise HGCError(f"--opset {opset}: the exporter produced opset {produced} (conversion unsupported); "
                       f"use --opset {produced}")
    props = metadata_props(config, meta, lineage, opset, dynamic_batch,
                           {"exporter": "torch.onnx (dynamo)", "torch": torch.__version__})
    with torch.inference_mode():
        reference = model(torch.from_numpy(images)).numpy()
    with atomic_path(out) as tmp:
        onnx.helper.set_model_props(proto, props)
        proto.doc_string = GRAPH_DOC
        onnx.save_model(proto, tmp)
        session = open_session(str(tmp), ["CPUExecutionProvider"], None, str(out))
        diff = _max_abs_diff(session, reference, images, dynamic_batch)
        del session
        if not diff <= atol:
            raise HGCError(f"{out}: export parity failed: max |onnxruntime - PyTorch| = {diff:.3g} > atol {atol:g} "
                           f"on {len(images)} images of {data}; nothing written")
        props["hgc.parity"] = json.dumps({"max_abs_diff": diff, "atol": atol, "images": len(images), "data": data,
                                          "runtime": "onnxruntime CPUExecutionProvider"})
        if eval_limit:
            props["hgc.accuracy"] = json.dumps(_accuracy(OrtPredictor(str(tmp)), data, eval_limit))
        onnx.helper.set_model_props(proto, props)
        onnx.save_model(proto, tmp)
    return ExportResult(path=str(out), opset=opset, dynamic_batch=dynamic_batch, max_abs_diff=diff,
                        parity_images=len(images), bytes=out.stat().st_size, sha256=sha256_file(out),
                        seconds=time.perf_counter() - started, metadata=read_metadata(out))


def _accuracy(predictor: Any, data: str, limit: int) -> dict[str, Any]:
    """PCKh of the exported file as onnxruntime runs it (stored so the artifact carries its own score)."""
    report = evaluate(predictor, data, limit=limit)
    scores = report.result.to_dict()
    return {"data": data, "samples": len(report.indices), "runtime": "onnxruntime CPUExecutionProvider",
            "pckh": scores["Mean"], "pckh@0.1": scores["Mean@0.1"], "auc": scores["AUC"],
            "table": {k: scores[k] for k in ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean")}}
