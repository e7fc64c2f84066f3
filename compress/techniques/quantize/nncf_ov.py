"""int8 for OpenVINO: NNCF's post-training quantization of the float export, written as an OpenVINO IR.

Measured on ``hg2-128`` (README, "OpenVINO"): our QDQ int8 ONNX read by OpenVINO runs as fast as in
onnxruntime but keeps PTQ's loss (−2.0 PCKh@0.5), while NNCF 3.4's default PTQ on the same 256 calibration
crops loses 0.05 and runs 1.05–1.07× faster than our file in OpenVINO. So ``quantize: {precision: int8,
runtime: openvino}`` goes through NNCF: ``nncf.quantize`` on the calibration crops (activation ranges:
the mean over crops of each crop's min/max; signed int8 where a tensor is signed; fast bias correction), or, with ``max_drop``, ``nncf.quantize_with_accuracy_control`` taking
our PCKh on the labelled scoring crops as the metric (the peer of int8 mixed precision). With ``qat`` the
op keeps the QDQ ONNX instead: QAT trains weights for that file's quantizer placement, and OpenVINO runs
its scales as they are.

``nncf`` and ``openvino`` are imported inside functions (the ``openvino`` extra).
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable

import numpy as np

from compress.data.crops import crops
from compress.errors import HGCError
from compress.export_ir import save_ir
from compress.onnx_meta import read_metadata
from compress.runtime_openvino import EXTRA, OpenVinoPredictor, import_openvino
from compress.techniques.quantize.artifact import QuantReport
from compress.techniques.quantize.config import QuantizeParams

Log = Callable[[dict[str, Any]], None]


def import_nncf() -> Any:
    """The ``nncf`` module, or one ``HGCError`` line naming the extra that installs it."""
    try:
        import nncf
    except ImportError:
        raise HGCError(f"runtime openvino, precision int8: NNCF is not installed; install the extra: {EXTRA}") from None
    return nncf


def _score(path: str, images: Any, threads: int) -> tuple[np.ndarray, Any]:
    predictor = OpenVinoPredictor(path, threads=threads, precision="fp32")
    return predictor(images), predictor


def quantize_openvino_int8(float_onnx: str, out_xml: str, data: str, params: QuantizeParams, *,
                           log: Log | None = None, threads: int = 1) -> QuantReport:
    """NNCF PTQ of ``float_onnx`` calibrated on ``params.calibration_images`` crops of ``data`` → IR ``out_xml``.

    ``params.max_drop`` switches to accuracy control (PCKh@0.5 on ``params.scoring_images`` labelled crops
    after the calibration ones). The report scores the float and the int8 model on those crops (fp32 hint)
    and counts the convolutions OpenVINO compiles as int8.
    """
    started = time.perf_counter()
    nncf, ov = import_nncf(), import_openvino()
    meta = read_metadata(float_onnx)
    size = int(meta["config"]["input_size"])
    calibration = crops(data, size, params.calibration_images, 0, purpose="calibration").images
    scoring = crops(data, size, params.scoring_images, params.calibration_images, purpose="scoring")
    model = ov.Core().read_model(float_onnx)
    model.reshape({0: [1, 3, size, size]})  # NNCF collects statistics image by image
    dataset = nncf.Dataset([calibration[i:i + 1] for i in range(len(calibration))])
    if params.max_drop is None:
        quantized = nncf.quantize(model, dataset, subset_size=len(calibration))
    else:
        def validate(compiled: Any, items: Any) -> tuple[float, None]:
            heatmaps = np.concatenate([compiled(x)[0][:, -1] for x in items])
            return float(scoring.pckh(heatmaps)), None

        validation = nncf.Dataset([scoring.images[i:i + 1] for i in range(len(scoring))])
        quantized = nncf.quantize_with_accuracy_control(model, dataset, validation, validation_fn=validate,
                                                        max_drop=params.max_drop, subset_size=len(calibration))
    quantized.reshape({0: [-1, 3, size, size]})
    report = QuantReport(precision="int8", calibration=f"nncf {nncf.__version__} default range estimators",
                         calibration_images=len(calibration), calibration_data=data,
                         options={"runtime": "openvino", "tool": f"nncf {nncf.__version__}",
                                  "accuracy_control": params.max_drop is not None, "max_drop": params.max_drop})
    keep = ("format", "config", "meta", "input", "output", "export")
    lineage = [*meta.get("lineage", []), {"op": "quantize-openvino", "params": dict(report.options)}]
    bytes_ir = save_ir(quantized, out_xml, {**{k: meta[k] for k in keep if k in meta}, "lineage": lineage,
                                            "quantization": report.to_dict()})
    reference, _ = _score(float_onnx, scoring.images, threads)
    heatmaps, predictor = _score(out_xml, scoring.images, threads)
    convs = predictor.conv_precisions
    report.kernels = {"int8_convs": sum(n for p, n in convs.items() if p in ("u8", "i8")), "conv_precisions": convs}
    report.conv_layers = sum(convs.values())
    report.pckh_fp32, report.pckh = float(scoring.pckh(reference)), float(scoring.pckh(heatmaps))
    report.heatmap_mse = float(np.mean((heatmaps - reference) ** 2))
    report.max_abs_diff = float(np.max(np.abs(heatmaps - reference)))
    report.scored_images = len(scoring)
    report.bytes_fp32, report.bytes, report.path = os.path.getsize(float_onnx), bytes_ir, str(out_xml)
    report.seconds = round(time.perf_counter() - started, 3)
    report.notes.append("OpenVINO IR from NNCF; onnxruntime cannot run it (time and score it with openvino-cpu)")
    for _ in range(3):  # the final report beside the metadata, its byte count that of the files it is in
        written = save_ir(quantized, out_xml, {"quantization": report.to_dict()})
        if written == report.bytes:
            break
        report.bytes = written
    if log:
        log({"event": "nncf", **{k: v for k, v in report.to_dict().items() if k != "sensitivity"}})
    return report
