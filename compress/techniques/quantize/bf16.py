"""bf16 for OpenVINO: an artifact that runs in bfloat16 where the runtime and the CPU can, refused where not.

OpenVINO's CPU plugin computes in bf16 when compiled with ``INFERENCE_PRECISION_HINT`` bf16, which it
honours only on CPUs with AVX512-BF16 or AMX-BF16 (capability ``BF16``); elsewhere it silently compiles
fp32. So the artifact is the fp32 ONNX export with ``hgc.quantization`` saying ``precision: bf16``
(weights stay fp32: OpenVINO converts them at compile time): ``OpenVinoPredictor`` reads that and sets the
hint, onnxruntime refuses the file (no bfloat16 CPU kernels), and a CPU without ``BF16`` is refused at
the step, naming the missing capability, rather than producing a "bf16" file that would run fp32.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx

from compress.errors import HGCError
from compress.io import sha256_file
from compress.runtime_openvino import OpenVinoPredictor, choose_hint, core, cpu_capabilities, ov_precision
from compress.techniques.quantize.artifact import QuantReport, write_artifact

OV_NOTE = ("fp32 weights; OpenVINO's CPU plugin computes it in bf16 (INFERENCE_PRECISION_HINT bf16, needs "
           "AVX512-BF16 or AMX-BF16); onnxruntime refuses it")


def check_openvino(precision: str) -> None:
    """Raise one ``HGCError`` line unless OpenVINO is installed and this CPU runs ``precision`` (before any work)."""
    ov_core = core()  # not installed: the line names the extra
    if precision in ("bf16", "fp16"):
        default = ov_precision(ov_core.get_property("CPU", "INFERENCE_PRECISION_HINT"))
        choose_hint(precision, None, cpu_capabilities(ov_core), default, f"precision {precision} for openvino")


def convert_bf16(onnx_in: str, onnx_out: str, images: np.ndarray | None = None, threads: int = 1) -> QuantReport:
    """Write the bf16 artifact: ``onnx_in``'s graph and weights with ``hgc.quantization`` precision bf16.

    With ``images`` the file runs in OpenVINO with the bf16 hint beside the fp32 hint and the heatmap
    difference is recorded (needs a CPU with BF16; elsewhere ``OpenVinoPredictor`` refuses).
    """
    started = time.perf_counter()
    proto = onnx.load(onnx_in)
    report = QuantReport(precision="bf16", bytes_fp32=Path(onnx_in).stat().st_size,
                         options={"runtime": "openvino", "weights": "fp32"}, notes=[OV_NOTE])
    if images is not None:
        half = OpenVinoPredictor(onnx_in, threads=threads, precision="bf16").run_all(images)
        full = OpenVinoPredictor(onnx_in, threads=threads, precision="fp32").run_all(images)
        if not np.all(np.isfinite(half)):
            raise HGCError(f"{onnx_out}: bf16 heatmaps are not finite; keep this model fp32")
        report.max_abs_diff = float(np.max(np.abs(half - full)))
        report.heatmap_mse = float(np.mean((half - full) ** 2))
        report.scored_images = len(images)
    report.seconds = round(time.perf_counter() - started, 3)
    write_artifact(proto, onnx_out, onnx_in, report, dict(report.options), sha256_file(onnx_in))
    report.path, report.bytes = str(onnx_out), Path(onnx_out).stat().st_size
    return report
