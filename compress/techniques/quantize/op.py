"""The ``quantize`` recipe op: fp16 / bf16 / int8 artifacts, evaluated as onnxruntime runs them.

* ``precision: int8`` — ``quantize_onnx_int8``: static QDQ quantization through onnxruntime with int8
  weights (per channel by default) and uint8 activations (U8S8, the x86 choice), calibrated on real
  benchmark crops (``calibration``: minmax, percentile or entropy). ``max_drop`` keeps the most
  sensitive layers (convs, BatchNorm convs, residual Adds) fp32 until the PCKh drop is within it
  (``sensitivity``); ``exclude`` forces layers fp32 by name pattern; ``qat`` fine-tunes under fake
  quantization first (``qat``). The report counts the convolutions that really run as int8 kernels in
  onnxruntime's optimized graph and the ops it leaves in float, by type and why (``artifact``).
* ``precision: fp16`` — ``half.convert_fp16`` (fp32 I/O kept by default; what happens to Resize is
  measured there). ``bf16`` has no onnxruntime CPU kernel and is refused with the reason; with
  ``runtime: openvino`` it is ``bf16.convert_bf16`` (the fp32 graph marked bf16: OpenVINO computes it in
  bf16 on CPUs with AVX512-BF16/AMX, and a CPU without that capability is refused). ``precision: int8,
  runtime: openvino`` is NNCF's PTQ written as an IR ``model.int8.xml`` (``nncf_ov``; with ``qat`` the QDQ
  ONNX, which OpenVINO runs as trained). PyTorch bf16 is
  ``half.torch_precision``. ``fp32`` leaves the model as it is (the runner exports it).

The artifact (``model.<precision>.onnx`` in the step directory) carries the float export's hgc.*
metadata, its lineage and ``hgc.quantization`` (the ``QuantReport``); the runner evaluates and times it.
"""
from __future__ import annotations

from typing import Any

from compress.data.crops import crops
from compress.export import export_onnx
from compress.nets import checkpoint
from compress.steps import StepContext, StepResult, register_step
from compress.techniques.quantize.bf16 import check_openvino, convert_bf16
from compress.techniques.quantize.config import QuantizeParams
from compress.techniques.quantize.half import check_runtime, convert_fp16
from compress.techniques.quantize.int8 import quantize_onnx_int8
from compress.techniques.quantize.nncf_ov import quantize_openvino_int8
from compress.techniques.quantize.qat import qat_finetune


def _float_export(model: Any, ctx: StepContext) -> str:
    """The current model as a float ONNX file in the step directory (scratch), with its lineage."""
    source, target = ctx.scratch("float.pt"), ctx.scratch("model.fp32.onnx")
    checkpoint.save(model, source, meta=ctx.meta, lineage=ctx.lineage)
    return export_onnx(str(source), target, dynamic_batch=True, data=ctx.data).path


def _qat(model: Any, params: QuantizeParams, ctx: StepContext) -> tuple[Any, dict[str, Any]]:
    """Fine-tune under fake quantization (resumable through the step's scratch checkpoint); model + metrics."""
    qat = params.qat
    assert qat is not None  # the caller checks
    work = ctx.scratch("qat.pt")
    ctx.scratch("qat.pt.state")
    resume = ctx.resume and work.is_file() and work.with_name("qat.pt.state").is_file()
    result = qat_finetune(model, ctx.data, str(work), params, teacher=ctx.teacher() if qat.distill else None,
                          device=ctx.device, resume=resume, meta=ctx.meta, lineage=ctx.lineage,
                          progress=ctx.progress)
    for record in result.history:
        ctx.log({"event": "qat", **record})
    last = result.history[-1] if result.history else {}
    return result.model, {"qat_steps": len(result.history), "qat_final_loss": last.get("loss"),
                          "qat_resumed": resume, "qat_folded_norms": len(result.folded),
                          "qat_fake_quant_points": result.activations}


@register_step("quantize", QuantizeParams, artifact=lambda params: params.precision != "fp32")
def quantize(model: Any, params: QuantizeParams, ctx: StepContext) -> StepResult:
    """Turn the model into an fp16 or int8 ONNX artifact (PTQ, sensitivity-guided mixed precision or QAT)."""
    if params.runtime == "openvino":
        check_openvino(params.precision)  # not installed, or a CPU without BF16: one line, before any work
    else:
        check_runtime(params.precision, params.provider)
    metrics: dict[str, Any] = {"precision": params.precision, "runtime": params.runtime}
    if params.precision == "fp32":
        return StepResult(model, metrics=metrics)
    if params.qat is not None:
        model, trained = _qat(model, params, ctx)
        metrics.update(trained)
    float_onnx = _float_export(model, ctx)
    nncf = params.runtime == "openvino" and params.precision == "int8" and params.qat is None
    name = f"model.{params.precision}.{'xml' if nncf else 'onnx'}"
    if nncf:  # int8 for OpenVINO: NNCF's PTQ (README "OpenVINO": measured against our QDQ file)
        report = quantize_openvino_int8(float_onnx, str(ctx.step_dir / name), ctx.data, params, log=ctx.log)
    elif params.precision == "fp16":
        images = crops(ctx.data, model.config.input_size, params.check_images, 0, purpose="fp16 check").images
        report = convert_fp16(float_onnx, str(ctx.step_dir / name), keep_io_types=params.keep_io_fp32,
                              images=images)
    elif params.precision == "bf16":
        images = crops(ctx.data, model.config.input_size, params.check_images, 0, purpose="bf16 check").images
        report = convert_bf16(float_onnx, str(ctx.step_dir / name), images=images)
    else:
        report = quantize_onnx_int8(float_onnx, str(ctx.step_dir / name), ctx.data, params, log=ctx.log,
                                    progress=ctx.progress)
    summary = report.to_dict()
    metrics.update(int8_norm_convs=report.kernels.get("int8_norm_convs", 0))
    metrics.update({k: summary[k] for k in ("int8_convs", "conv_layers", "size_ratio", "bytes", "bytes_fp32",
                                            "pckh_fp32", "pckh", "pckh_drop", "heatmap_mse", "max_abs_diff",
                                            "scored_images", "calibration", "calibration_images",
                                            "per_channel", "activation_type")})
    metrics.update(fp32_nodes=len(report.excluded), float_ops=report.kernels.get("float_ops", {}),
                   notes=report.notes)
    ctx.log({"event": "report", **summary})
    return StepResult(model, artifact=name, metrics=metrics)
