"""Static int8 QDQ quantization of a float ONNX file through onnxruntime, calibrated on real crops.

int8 weights (per channel by default) and uint8 activations (U8S8, the x86 choice); ``max_drop`` keeps the
most sensitive nodes fp32 (``sensitivity``), ``exclude`` forces nodes fp32 by pattern, and the report counts
the convolutions that really run as int8 kernels (``artifact``).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx

from compress.data.crops import Crops, crops
from compress.errors import HGCError
from compress.io import sha256_file
from compress.measure.kernels import NORM_CONV_SUFFIX, runtime_kernels
from compress.runtime import OrtPredictor
from compress.steps import unknown_key_error
from compress.techniques.quantize import calibration as qc
from compress.techniques.quantize.artifact import QuantReport, write_artifact
from compress.techniques.quantize.config import QuantizeParams
from compress.techniques.quantize.graph import compact_qdq, conv_layers, match_nodes, stream_nodes
from compress.techniques.quantize.sensitivity import rank_layers, select_fp32


def quantize_onnx_int8(onnx_in: str, onnx_out: str, data: Any, config: QuantizeParams | None = None, *,
                       threads: int = 1, log: Callable[[dict[str, Any]], None] | None = None,
                       progress: bool = False, **settings: Any) -> QuantReport:
    """Static int8 QDQ quantization of a float ONNX file, calibrated on real crops; returns the report.

    ``config`` is the ``quantize`` op's configuration (defaults: ``QuantizeParams()``); keyword ``settings``
    replace fields of it (``calibration_images=64``) and are validated the same way.
    ``data``: a data spec (calibration crops from position 0, labelled scoring crops after them) or an
    N×3×S×S float array (calibration only). ``max_drop`` (PCKh points) keeps the most sensitive nodes
    fp32 until the drop on the ``scoring_images`` crops is within it (the first ``sensitivity_images`` of
    them rank the candidates: heatmap MSE is a steady signal on few crops, a PCKh drop is not);
    ``exclude`` patterns are always fp32. ``norms_as_conv`` runs the pre-activation BatchNorms as int8
    depthwise convs (else they stay float); a GPU ``provider`` gets symmetric int8 activations.
    ``progress`` shows the mixed-precision search advancing (``log`` gets each try as a record).
    """
    config = _int8_config(config, settings)
    started = time.perf_counter()
    _, shape, _ = qc.model_input(onnx_in)
    size = qc.input_size(onnx_in)
    scored: Crops | None = None
    calibration_images, max_drop = config.calibration_images, config.max_drop
    if isinstance(data, str):
        images = crops(data, size, calibration_images, 0, purpose="calibration").images
        scored = crops(data, size, max(config.sensitivity_images, config.scoring_images), calibration_images,
                       purpose="calibration")
        where = f"{data} eval crops, positions 0..{calibration_images - 1}"
    else:
        images = qc.check_images(data, shape, calibration_images, onnx_in)
        where = "images given by the caller"
    if max_drop is not None and scored is None:
        raise HGCError("max_drop: sensitivity analysis needs labelled crops; pass a data spec, not an array")
    float_proto = onnx.load(onnx_in)
    layers = conv_layers(float_proto)
    forced = match_nodes(list(config.exclude), layers, [n.name for n in float_proto.graph.node])
    report = QuantReport(precision="int8", calibration=config.calibration, calibration_images=len(images),
                         calibration_data=where, weight_type="int8", conv_layers=len(layers),
                         bytes_fp32=Path(onnx_in).stat().st_size, per_channel=config.per_channel,
                         activation_type=config.activation_type,
                         options={"symmetric_activations": config.symmetric_activations,
                                  "reduce_range": config.reduce_range})
    names = dict(layers)
    report.excluded = [{"node": n, "layer": names.get(n, n), "reason": f"exclude pattern {p!r}"}
                       for n, p in forced.items()]
    if config.norms_as_conv and not config.per_channel:  # Calibration then leaves the BatchNorms float
        report.notes.append("norms_as_conv needs per-channel weights; the BatchNorms stay float")
    with qc.Calibration(onnx_in, images, config) as cal:
        report.notes.append(f"pre-processing: {cal.preprocessing}")
        report.options["norms_as_conv"] = len(cal.norms_as_conv)
        renamed = set(cal.norms_as_conv)
        for row in report.excluded:
            if row["node"] in renamed:
                row["node"] += NORM_CONV_SUFFIX
        reference = OrtPredictor(onnx_in, threads=threads)(scored.images) if scored is not None else None
        if max_drop is not None and scored is not None and reference is not None:
            # candidates beside the conv layers: the BatchNorms run as int8 convs, and the residual Adds
            # (and other merges) whose Q/DQ pairs round the stream itself — on hg2-128 most of the int8 error
            norms = [(n + NORM_CONV_SUFFIX, f"{n} (BatchNorm as int8 conv)") for n in cal.norms_as_conv]
            stream = stream_nodes(onnx.load(cal.model, load_external_data=False))
            forced_nodes = [row["node"] for row in report.excluded]  # the forced rows, norm names renamed
            ranked = scored.head(config.sensitivity_images)  # few crops rank (heatmap MSE), all of them decide
            ranking = rank_layers(cal, layers + norms + stream, ranked, reference[:len(ranked)],
                                  skip=set(forced_nodes), threads=threads, log=log,
                                  progress=progress)
            chosen = select_fp32(cal, ranking, scored, reference, max_drop, forced=forced_nodes,
                                 threads=threads, log=log)
            report.sensitivity = chosen.to_dict()
            report.excluded += chosen.excluded_rows()
            if not chosen.met:
                report.notes.append(f"max_drop {max_drop} not met even with every ranked node fp32 "
                                    f"(drop {chosen.drop:.2f}): the rest comes from the graph input's quantization")
        work = str(cal.dir / "int8.onnx")
        bypassed = cal.quantize(work, nodes_to_exclude=[row["node"] for row in report.excluded])
        if bypassed:
            report.notes.append(f"{bypassed} Q/DQ pairs bypassed after fp32 nodes (graph.keep_float): "
                                "after a conv so onnxruntime cannot re-quantize it, after an Add so the "
                                "residual stream stays float")
        proto = onnx.load(work)
        compacted = compact_qdq(proto)
        onnx.save_model(proto, work)
        report.notes.append(f"compacted: {compacted['zero_points_dropped']} all-zero weight/bias zero points "
                            f"dropped, {compacted['tensors_renamed']} tensors renamed")
        if scored is not None and reference is not None:
            out = OrtPredictor(work, threads=threads)(scored.images)
            report.pckh_fp32, report.pckh = scored.pckh(reference), scored.pckh(out)
            report.heatmap_mse = float(np.mean((out - reference) ** 2))
            report.max_abs_diff = float(np.max(np.abs(out - reference)))
            report.scored_images = len(scored)
        report.kernels = runtime_kernels(work, threads=threads).to_dict()
    report.seconds = round(time.perf_counter() - started, 3)
    params = {"calibration": config.calibration, "calibration_images": len(images),
              "per_channel": config.per_channel, "activation_type": config.activation_type,
              "symmetric_activations": config.symmetric_activations, "max_drop": max_drop,
              "exclude": list(config.exclude), "norms_as_conv": config.norms_as_conv and config.per_channel}
    write_artifact(proto, onnx_out, onnx_in, report, params, sha256_file(onnx_in))
    report.path, report.bytes = str(onnx_out), Path(onnx_out).stat().st_size
    return report


def _int8_config(config: QuantizeParams | None, settings: dict[str, Any]) -> QuantizeParams:
    """``config`` (default ``QuantizeParams()``) with ``settings`` replaced, validated, for precision int8."""
    base = config or QuantizeParams()
    known = {f.name for f in dataclasses.fields(QuantizeParams)}
    for key in settings:
        if key not in known:
            raise unknown_key_error(key, sorted(known), "quantize_onnx_int8")
    try:
        chosen = dataclasses.replace(base, **settings)
    except HGCError as exc:
        raise HGCError(f"quantize_onnx_int8: {exc}") from None
    if chosen.precision != "int8":
        raise HGCError(f"quantize_onnx_int8: precision is {chosen.precision!r}; this function makes int8 files")
    return chosen
