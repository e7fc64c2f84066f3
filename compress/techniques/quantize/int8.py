"""Static int8 QDQ quantization of a float ONNX file through onnxruntime, calibrated on real crops.

int8 weights (per channel by default) and uint8 activations (U8S8, the x86 choice); ``max_drop`` keeps the
most sensitive nodes fp32 (``sensitivity``), ``exclude`` forces nodes fp32 by pattern, and the report counts
the convolutions that really run as int8 kernels (``artifact``).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from compress.errors import HGCError
from compress.io import sha256_file
from compress.techniques.quantize import calibration as qc
from compress.techniques.quantize.artifact import NORM_CONV_SUFFIX, QuantReport, runtime_kernels, write_artifact
from compress.techniques.quantize.graph import compact_qdq, conv_layers, match_nodes, stream_nodes


def quantize_onnx_int8(onnx_in: str, onnx_out: str, data: Any, *, calibration_images: int = 256,
                       calibration: str = "minmax", percentile: float = 99.999, per_channel: bool = True,
                       activation_type: str = "uint8", exclude: list[str] | tuple[str, ...] = (),
                       max_drop: float | None = None, sensitivity_images: int = 128, scoring_images: int = 1024,
                       norms_as_conv: bool = True,
                       symmetric_activations: bool = False, threads: int = 1,
                       log: Callable[[dict[str, Any]], None] | None = None) -> QuantReport:
    """Static int8 QDQ quantization of a float ONNX file, calibrated on real crops; returns the report.

    ``data``: a data spec (calibration crops from position 0, labelled scoring crops after them) or an
    N×3×S×S float array (calibration only). ``max_drop`` (PCKh points) keeps the most sensitive nodes
    fp32 until the drop on the ``scoring_images`` crops is within it (the first ``sensitivity_images`` of
    them rank the candidates: heatmap MSE is a steady signal on few crops, a PCKh drop is not);
    ``exclude`` patterns are always fp32.
    ``norms_as_conv`` runs the pre-activation BatchNorms as int8 depthwise convs (else they stay float);
    ``symmetric_activations`` (int8, zero point 0) is for TensorRT/CUDA targets.
    """
    import onnx

    from compress.runtime import OrtPredictor
    from compress.techniques.quantize.sensitivity import rank_layers, select_fp32

    started = time.perf_counter()
    _, shape, _ = qc.model_input(onnx_in)
    size = qc.input_size(onnx_in)
    scored: qc.Crops | None = None
    if isinstance(data, str):
        images = qc.crops(data, size, calibration_images, 0).images
        scored = qc.crops(data, size, max(sensitivity_images, scoring_images), calibration_images)
        where = f"{data} eval crops, positions 0..{calibration_images - 1}"
    else:
        images = qc.check_images(data, shape, calibration_images, onnx_in)
        where = "images given by the caller"
    if max_drop is not None and scored is None:
        raise HGCError("max_drop: sensitivity analysis needs labelled crops; pass a data spec, not an array")
    float_proto = onnx.load(onnx_in)
    layers = conv_layers(float_proto)
    forced = match_nodes(list(exclude), layers, [n.name for n in float_proto.graph.node])
    settings = {"per_channel": per_channel, "activation_type": activation_type,
                "symmetric_activations": symmetric_activations}
    report = QuantReport(precision="int8", calibration=calibration, calibration_images=len(images),
                         calibration_data=where, weight_type="int8", conv_layers=len(layers),
                         bytes_fp32=Path(onnx_in).stat().st_size, per_channel=per_channel,
                         activation_type=activation_type, options={"symmetric_activations": symmetric_activations})
    names = dict(layers)
    report.excluded = [{"node": n, "layer": names.get(n, n), "reason": f"exclude pattern {p!r}"}
                       for n, p in forced.items()]
    if norms_as_conv and not per_channel:
        norms_as_conv = False  # one scale for all BatchNorm channels would round their weights badly
        report.notes.append("norms_as_conv needs per-channel weights; the BatchNorms stay float")
    with qc.Calibration(onnx_in, images, calibration, percentile, norms_as_conv) as cal:
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
            ranked = scored.head(sensitivity_images)  # few crops rank (heatmap MSE), all of them decide
            ranking = rank_layers(cal, layers + norms + stream, ranked, reference[:len(ranked)],
                                  skip=set(forced_nodes), threads=threads, log=log, **settings)
            chosen = select_fp32(cal, ranking, scored, reference, max_drop, forced=forced_nodes,
                                 threads=threads, log=log, **settings)
            report.sensitivity = chosen.to_dict()
            report.excluded += chosen.excluded_rows()
            if not chosen.met:
                report.notes.append(f"max_drop {max_drop} not met even with every ranked node fp32 "
                                    f"(drop {chosen.drop:.2f}): the rest comes from the graph input's quantization")
        work = str(cal.dir / "int8.onnx")
        bypassed = cal.quantize(work, nodes_to_exclude=[row["node"] for row in report.excluded], **settings)
        if bypassed:
            report.notes.append(f"{bypassed} Q/DQ pairs bypassed after fp32 nodes (quant_graph.keep_float): "
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
    params = {"calibration": calibration, "calibration_images": len(images), **settings,
              "max_drop": max_drop, "exclude": list(exclude), "norms_as_conv": norms_as_conv}
    write_artifact(proto, onnx_out, onnx_in, report, params, sha256_file(onnx_in))
    report.path, report.bytes = str(onnx_out), Path(onnx_out).stat().st_size
    return report
