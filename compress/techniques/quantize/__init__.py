"""Quantization: fp16 / bf16 / int8 artifacts evaluated as the runtime runs them (the ``quantize`` op).

Modules: ``op`` (the recipe op), ``config`` (its one configuration, ``QuantizeParams``), ``int8`` (static QDQ PTQ),
``calibration`` (activation ranges on real crops), ``graph`` (QDQ graph edits), ``sensitivity``
(mixed-precision search), ``half`` (fp16/bf16), ``qat`` (quantization-aware fine-tuning) and ``artifact``
(the report stored in the file). The names below are the public Python entry points.
"""
from compress.techniques.quantize.artifact import QuantReport
from compress.techniques.quantize.calibration import Calibration
from compress.techniques.quantize.config import QATParams, QuantizeParams
from compress.techniques.quantize.half import convert_fp16, torch_precision
from compress.techniques.quantize.int8 import quantize_onnx_int8
from compress.techniques.quantize.op import quantize
from compress.techniques.quantize.qat import prepare_qat, qat_finetune
from compress.techniques.quantize.sensitivity import rank_layers, select_fp32

__all__ = ["Calibration", "QATParams", "QuantReport", "QuantizeParams", "convert_fp16", "prepare_qat",
           "qat_finetune", "quantize", "quantize_onnx_int8", "rank_layers", "select_fp32", "torch_precision"]
