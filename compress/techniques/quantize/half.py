"""Half precision: fp16 ONNX files, bf16/fp16 in PyTorch, and which runtime can run which precision.

fp16 ONNX comes from onnxconverter-common. Its default block list keeps ``Resize`` in fp32 with a Cast
pair around it, and converting Resize naively turns the fp32 ``scales`` input into fp16, which makes an
invalid model. What was measured on the tiny trained model (2 Resize nodes):

* Resize blocked: 8 Casts in the file (keep_io_types): 2 for the I/O, a pair around each Resize's data,
  and one per Resize turning the (converted) fp16 scales back into fp32. Resize converted, its scales put
  back to fp32: 2 Casts (I/O only), max |fp16 − fp32| heatmap difference unchanged (1.6e-3).
* On onnxruntime's CPU provider it makes no difference: that provider has no fp16 Conv kernel, so it
  inserts Casts around every fp16 node and then cancels adjacent pairs; the optimized graph runs fp32
  kernels with 2 Casts either way, and nearest-neighbour Resize only copies values, so the heatmaps match
  bit for bit. fp16 ONNX on this CPU halves the bytes and gains no speed.
* On GPU providers (native fp16 Resize) each Cast pair costs two extra memory passes, so ``convert_fp16``
  converts Resize too (``resize_fp16=True``) and restores the fp32 ``roi``/``scales``.

bf16: onnxruntime has no bfloat16 Conv kernel on its CPU provider (``ort_supports`` probes it with a
one-Conv model rather than assuming); ``torch_precision`` runs bf16/fp16 in PyTorch where the device has
the kernels (CUDA; CPUs with AVX512-BF16 or AMX through oneDNN).
"""
from __future__ import annotations

import copy
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from onnxconverter_common import float16
from torch import nn

from compress.errors import HGCError, first_line
from compress.io import sha256_file
from compress.measure.kernels import runtime_kernels
from compress.runtime import OrtPredictor, resolve_providers, tensorrt_options
from compress.techniques.quantize.artifact import QuantReport, write_artifact

TORCH_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def float_resize_params(proto: Any) -> int:
    """Put Resize's ``roi``/``scales`` back to fp32 after an fp16 conversion; returns how many were fixed.

    The converter turns every float initializer into fp16, but Resize requires fp32 roi and scales.
    """
    inits = {t.name: t for t in proto.graph.initializer}
    users: dict[str, set[str]] = {}
    for node in proto.graph.node:
        for name in node.input:
            users.setdefault(name, set()).add(node.op_type)
    fixed = 0
    for node in proto.graph.node:
        if node.op_type != "Resize":
            continue
        for index in (1, 2):
            name = node.input[index] if len(node.input) > index else ""
            tensor = inits.get(name)
            if tensor is None or tensor.data_type != TensorProto.FLOAT16:
                continue
            values = numpy_helper.to_array(tensor).astype(np.float32)
            if users.get(name) == {"Resize"}:
                tensor.CopyFrom(numpy_helper.from_array(values, name))
            else:  # shared with other consumers: give Resize its own fp32 copy
                twin = f"{name}_fp32"
                if twin not in inits:
                    inits[twin] = numpy_helper.from_array(values, twin)
                    proto.graph.initializer.append(inits[twin])
                node.input[index] = twin
            fixed += 1
    for value in [v for v in proto.graph.value_info if v.name in inits]:
        proto.graph.value_info.remove(value)
    return fixed


def _heatmaps(path: str, images: np.ndarray, threads: int) -> np.ndarray:
    return OrtPredictor(path, threads=threads)(images)


def convert_fp16(onnx_in: str, onnx_out: str, *, keep_io_types: bool = True, resize_fp16: bool = True,
                 images: np.ndarray | None = None, threads: int = 1) -> QuantReport:
    """Convert a float ONNX file to fp16 (module docstring: what happens to Resize); returns the report.

    With ``images`` the fp16 file runs beside the fp32 one and the heatmap difference is recorded;
    non-finite fp16 heatmaps (overflow) are an error and nothing is written.
    """
    started = time.perf_counter()
    proto = onnx.load(onnx_in)
    block = [op for op in float16.DEFAULT_OP_BLOCK_LIST if not (resize_fp16 and op == "Resize")]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            half = float16.convert_float_to_float16(proto, keep_io_types=keep_io_types, op_block_list=block)
    except Exception as exc:  # the converter raises assorted errors on graphs it cannot handle
        raise HGCError(f"{onnx_in}: fp16 conversion failed: {first_line(exc)}") from None
    clamped = sum("truncated" in str(w.message) for w in caught)
    fixed = float_resize_params(half) if resize_fp16 else 0
    casts = sum(n.op_type == "Cast" for n in half.graph.node)
    report = QuantReport(precision="fp16", bytes_fp32=Path(onnx_in).stat().st_size,
                         options={"keep_io_types": keep_io_types, "resize_fp16": resize_fp16})
    resize = f"in fp16 ({fixed} roi/scales inputs kept fp32)" if resize_fp16 else "fp32 between Cast pairs"
    report.notes.append(f"Resize {resize}; {casts} Cast nodes in the file; "
                        f"inputs/outputs {'fp32' if keep_io_types else 'fp16'}")
    if clamped:
        report.notes.append(f"{clamped} weight(s) below fp16's normal range clamped to ±1e-7 by the converter")
    with tempfile.TemporaryDirectory(prefix="hgc-fp16-") as scratch:
        work = os.path.join(scratch, "fp16.onnx")
        onnx.save_model(half, work)
        report.kernels = runtime_kernels(work, threads=threads).to_dict()
        report.kernels.pop("why_float")  # its reasons explain int8 graphs; here every float op is the CPU's choice
        if images is not None:
            reference, out = _heatmaps(onnx_in, images, threads), _heatmaps(work, images, threads)
            if not np.all(np.isfinite(out)):
                raise HGCError(f"{onnx_out}: fp16 heatmaps overflow (non-finite values); keep this model fp32")
            report.max_abs_diff = float(np.max(np.abs(out - reference)))
            report.heatmap_mse = float(np.mean((out - reference) ** 2))
            report.scored_images = len(images)
    if not report.kernels.get("fp16_ops", {}).get("Conv"):
        report.notes.append("onnxruntime's CPU provider runs every convolution in fp32 here (no fp16 Conv "
                            "kernel): half the bytes, no speed gain")
    report.seconds = round(time.perf_counter() - started, 3)
    write_artifact(half, onnx_out, onnx_in, report, dict(report.options), sha256_file(onnx_in),
                   io_dtype=None if keep_io_types else "float16")
    report.path, report.bytes = str(onnx_out), Path(onnx_out).stat().st_size
    return report


def ort_supports(precision: str, provider: str = "cpu") -> tuple[bool, str]:
    """(whether onnxruntime's ``provider`` can run a Conv in ``precision``, why not) — probed, not assumed.

    A one-Conv model in that precision is opened in a session; a missing kernel fails at load time.
    """
    if precision in ("fp32", "int8"):
        return True, ""
    chain = resolve_providers(provider, "cpu" if provider == "cpu" else "cuda")
    elem = {"fp16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16}[precision]
    raw = torch.ones(1, dtype=TORCH_DTYPES[precision]).view(torch.int16).numpy().tobytes()
    weight = helper.make_tensor("w", elem, [1, 1, 1, 1], raw, raw=True)
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", elem, [1, 1, 2, 2])],
                              [helper.make_tensor_value_info("y", elem, [1, 1, 2, 2])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    model.ir_version = 10
    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        ort.InferenceSession(model.SerializeToString(), options, providers=chain[:1])
    except Exception as exc:  # NOT_IMPLEMENTED / INVALID_GRAPH: no kernel for this type
        return False, first_line(exc)[:200]
    return True, ""


def check_runtime(precision: str, provider: str) -> None:
    """Raise ``HGCError`` when onnxruntime's ``provider`` cannot run ``precision`` (before any work is done).

    fp16 on the CPU provider runs (in fp32 kernels) and is allowed; bf16 has no ONNX path here.
    """
    if precision != "bf16":
        resolve_providers(provider, "cpu" if provider == "cpu" else "cuda")  # a missing provider is an error
        return
    ok, why = ort_supports("bf16", provider)
    torch_ok, torch_why = torch_supports("bf16", "cuda" if provider != "cpu" else "cpu")
    where = f"onnxruntime's {provider} provider"
    hint = ("; bf16 does run in PyTorch on this machine: compress.techniques.quantize.half.torch_precision(model, "
            "'bf16')" if torch_ok else f"; PyTorch cannot either ({torch_why})")
    reason = f": it has no bfloat16 Conv kernel ({why})" if not ok else " (no bf16 converter in this toolkit)"
    raise HGCError(f"precision bf16: no bf16 ONNX artifact for {where}{reason}{hint}; "
                   "runtime: openvino runs bf16 on CPUs with AVX512-BF16/AMX")


def torch_supports(precision: str, device: str) -> tuple[bool, str]:
    """(whether PyTorch has fast ``precision`` convolutions on ``device``, why not)."""
    if precision == "fp32":
        return True, ""
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return False, "CUDA is not available"
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            return False, "this GPU has no bf16 support"
        return True, ""
    if not torch.backends.mkldnn.is_available():
        return False, "PyTorch was built without oneDNN"
    probe = torch.ops.mkldnn._is_mkldnn_bf16_supported if precision == "bf16" else \
        torch.ops.mkldnn._is_mkldnn_fp16_supported
    if not probe():
        needs = "AVX512-BF16 / AMX" if precision == "bf16" else "AVX512-FP16 / AMX-FP16"
        return False, f"this CPU lacks {precision} instructions ({needs})"
    return True, ""


class HalfPrecision(nn.Module):
    """A hourglass run in fp16/bf16: float32 images in, float32 heatmaps out (``config`` kept for evaluation)."""

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.net, self.dtype, self.config = model.to(dtype), dtype, model.config

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image.to(self.dtype)).float()


def torch_precision(model: nn.Module, precision: str, device: str = "cpu") -> nn.Module:
    """A copy of ``model`` that computes in ``precision`` on ``device`` (fp32 in and out).

    Unsupported precision/device pairs are an ``HGCError`` naming the missing capability.
    """
    if precision not in ("fp32", *TORCH_DTYPES):
        raise HGCError(f"precision: {precision!r} is not one of fp32, fp16, bf16 for PyTorch")
    ok, why = torch_supports(precision, device)
    if not ok:
        raise HGCError(f"precision {precision} on {device} in PyTorch: {why}")
    clone = copy.deepcopy(model).eval().to(device)
    return clone if precision == "fp32" else HalfPrecision(clone, TORCH_DTYPES[precision])


def gpu_provider_options(provider: str, precision: str, cache_dir: str | None = None) -> list[Any]:
    """onnxruntime provider list (with options) for a GPU artifact of ``precision``.

    TensorRT builds fp16 kernels only with ``trt_fp16_enable`` and int8 ones from the file's explicit
    Q/DQ scales with ``trt_int8_enable`` (no calibration table needed for QDQ files); the CUDA provider
    runs fp16 natively and QDQ int8 as DequantizeLinear + float kernels.
    """
    chain = resolve_providers(provider, "cuda")
    trt: dict[str, Any] = tensorrt_options(precision)
    if cache_dir:
        trt.update(trt_engine_cache_enable=True, trt_engine_cache_path=cache_dir)
    return [(p, trt) if p == "TensorrtExecutionProvider" else p for p in chain]
