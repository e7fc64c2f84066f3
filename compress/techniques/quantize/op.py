"""The ``quantize`` recipe op: fp16 / bf16 / int8 artifacts, evaluated as onnxruntime runs them.

* ``precision: int8`` — ``quantize_onnx_int8``: static QDQ quantization through onnxruntime with int8
  weights (per channel by default) and uint8 activations (U8S8, the x86 choice), calibrated on real
  benchmark crops (``calibration``: minmax, percentile or entropy). ``max_drop`` keeps the most
  sensitive layers (convs, BatchNorm convs, residual Adds) fp32 until the PCKh drop is within it
  (``sensitivity``); ``exclude`` forces layers fp32 by name pattern; ``qat`` fine-tunes under fake
  quantization first (``qat``). The report counts the convolutions that really run as int8 kernels in
  onnxruntime's optimized graph and the ops it leaves in float, by type and why (``artifact``).
* ``precision: fp16`` — ``half.convert_fp16`` (fp32 I/O kept by default; what happens to Resize is
  measured there). ``bf16`` has no onnxruntime CPU kernel and is refused with the reason; PyTorch bf16 is
  ``half.torch_precision``. ``fp32`` leaves the model as it is (the runner exports it).

The artifact (``model.<precision>.onnx`` in the step directory) carries the float export's hgc.*
metadata, its lineage and ``hgc.quantization`` (the ``QuantReport``); the runner evaluates and times it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from compress.errors import HGCError
from compress.io import sha256_file
from compress.steps import DistillParams, Params, StepContext, bounded, choice, items, option, register_step
from compress.techniques.quantize import calibration as qc

from compress.techniques.quantize.int8 import quantize_onnx_int8
from compress.techniques.quantize.half import check_runtime, convert_fp16

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
PROVIDERS = ("cpu", "cuda", "tensorrt")
QUICK_CALIBRATION, QUICK_SCORING = 32, 16


@dataclass
class QATParams(Params):
    """Quantization-aware fine-tuning before the int8 export (``compress.techniques.quantize.qat``)."""

    steps: int = bounded(500, 1, doc="optimizer steps under fake quantization (×0.01, min 2, under --quick)")
    lr: float = bounded(2.5e-5, 0.0, doc="learning rate (Adam, constant)")
    batch_size: int = bounded(16, 1, doc="images per step")
    seed: int = bounded(0, 0, doc="sample stream and augmentation seed")
    checkpoint_every: int = bounded(100, 0, doc="resumable checkpoint every N steps (0: at the end only)")
    distill: DistillParams | None = option(None, "distil from the fp32 teacher: {alpha: 0.5}")


@dataclass
class QuantizeParams(Params):
    """Precision and, for int8, calibration / mixed-precision / QAT settings of the ``quantize`` op."""

    precision: str = choice("int8", PRECISIONS, "numeric format of the artifact")
    provider: str = choice("cpu", PROVIDERS, "onnxruntime execution provider the artifact is for")
    calibration_images: int = bounded(256, 1, doc="real benchmark crops for int8 calibration (≤ 32 under --quick)")
    calibration: str = choice("minmax", qc.METHODS, "int8 activation range method")
    percentile: float = bounded(99.999, 90.0, 100.0, doc="calibration percentile: the range keeps this percentile")
    per_channel: bool = option(True, "int8 weights per output channel (else per tensor)")
    activation_type: str = choice("uint8", qc.ACTIVATION_TYPES, "int8 activations: uint8 (x86 U8S8) or int8")
    norms_as_conv: bool = option(True, "int8: run pre-activation BatchNorms as depthwise 1×1 int8 convs")
    keep_io_fp32: bool = option(True, "fp16: keep float32 inputs and outputs")
    max_drop: float | None = bounded(None, 0.0, doc="int8: keep sensitive layers fp32 until the PCKh drop ≤ this")
    sensitivity_images: int = bounded(128, 1, doc="crops that rank each candidate alone (≤ 16 under --quick)")
    scoring_images: int = bounded(1024, 1, doc="labelled crops that measure the PCKh drop: mixed-precision tries "
                                               "and the step's report (≤ 16 under --quick)")
    exclude: list[str] = items(list, "node or layer name patterns kept fp32 (fnmatch)")
    qat: QATParams | None = option(None, "int8: quantization-aware fine-tuning first: {steps: 500, lr: 2.5e-5}")

    def check(self) -> None:
        int8_only = [name for name, on in (("max_drop", self.max_drop is not None), ("exclude", bool(self.exclude)),
                                           ("qat", self.qat is not None)) if on]
        if int8_only and self.precision != "int8":
            raise HGCError(f"{int8_only[0]}: applies to precision int8, not {self.precision}")
        if self.precision == "int8" and self.provider != "cpu" and self.activation_type != "int8":
            raise HGCError(f"activation_type: {self.provider} runs symmetric int8 activations; set it to int8")


def _float_export(model: Any, ctx: StepContext) -> str:
    """The current model as a float ONNX file in the step directory (scratch), with its lineage."""
    from compress.export import export_onnx
    from compress.nets import checkpoint

    source, target = ctx.scratch("float.pt"), ctx.scratch("model.fp32.onnx")
    checkpoint.save(model, source, meta=ctx.meta, lineage=ctx.lineage)
    return export_onnx(str(source), target, dynamic_batch=True, data=ctx.data).path


def _qat(model: Any, params: QuantizeParams, ctx: StepContext) -> Any:
    """Fine-tune under fake quantization (resumable through the step's scratch checkpoint)."""
    from compress.techniques.quantize.qat import qat_finetune

    qat = params.qat
    assert qat is not None
    work = ctx.scratch("qat.pt")
    ctx.scratch("qat.pt.state")
    resume = ctx.resume and work.is_file() and work.with_name("qat.pt.state").is_file()
    result = qat_finetune(model, ctx.data, steps=ctx.scaled(qat.steps), lr=qat.lr, out=str(work),
                          batch_size=qat.batch_size, teacher=ctx.teacher() if qat.distill else None,
                          alpha=qat.distill.alpha if qat.distill else 0.5, per_channel=params.per_channel,
                          activation_type=params.activation_type,
                          calibration_images=min(params.calibration_images, 64), seed=qat.seed,
                          checkpoint_every=qat.checkpoint_every, device=ctx.device, resume=resume, meta=ctx.meta,
                          lineage=ctx.lineage,                          progress=ctx.progress)
    for record in result.history:
        ctx.log({"event": "qat", **record})
    last = result.history[-1] if result.history else {}
    ctx.metrics.update(qat_steps=len(result.history), qat_final_loss=last.get("loss"), qat_resumed=resume,
                       qat_folded_norms=len(result.folded), qat_fake_quant_points=result.activations)
    return result.model


@register_step("quantize", QuantizeParams)
def quantize(model: Any, params: QuantizeParams, ctx: StepContext) -> Any:
    """Turn the model into an fp16 or int8 ONNX artifact (PTQ, sensitivity-guided mixed precision or QAT)."""
    check_runtime(params.precision, params.provider)
    ctx.metrics["precision"] = params.precision
    if params.precision == "fp32":
        return model
    if params.qat is not None:
        model = _qat(model, params, ctx)
    float_onnx = _float_export(model, ctx)
    name = f"model.{params.precision}.onnx"
    if params.precision == "fp16":
        size = model.config.input_size
        images = qc.crops(ctx.data, size, QUICK_SCORING if ctx.quick else 64, 0).images
        report = convert_fp16(float_onnx, str(ctx.step_dir / name), keep_io_types=params.keep_io_fp32,
                              images=images)
    else:
        calibration = min(params.calibration_images, QUICK_CALIBRATION) if ctx.quick else params.calibration_images
        ranking = min(params.sensitivity_images, QUICK_SCORING) if ctx.quick else params.sensitivity_images
        scoring = min(params.scoring_images, QUICK_SCORING) if ctx.quick else params.scoring_images
        report = quantize_onnx_int8(float_onnx, str(ctx.step_dir / name), ctx.data,
                                    calibration_images=calibration, calibration=params.calibration,
                                    percentile=params.percentile, per_channel=params.per_channel,
                                    activation_type=params.activation_type, exclude=params.exclude,
                                    max_drop=params.max_drop, sensitivity_images=ranking,
                                    scoring_images=scoring,
                                    norms_as_conv=params.norms_as_conv,
                                    symmetric_activations=params.provider != "cpu", log=ctx.log)
    ctx.artifact = name
    summary = report.to_dict()
    ctx.metrics.update(int8_norm_convs=report.kernels.get("int8_norm_convs", 0))
    ctx.metrics.update({k: summary[k] for k in ("int8_convs", "conv_layers", "size_ratio", "bytes", "bytes_fp32",
                                                "pckh_fp32", "pckh", "pckh_drop", "heatmap_mse", "max_abs_diff",
                                                "scored_images", "calibration", "calibration_images",
                                                "per_channel", "activation_type")})
    ctx.metrics.update(fp32_nodes=len(report.excluded), float_ops=report.kernels.get("float_ops", {}),
                       notes=report.notes)
    ctx.log({"event": "report", **summary})
    return model
