"""The one configuration of quantization: what a recipe's ``quantize:`` mapping holds, validated once.

``QuantizeParams`` flows whole from the recipe to the op, the int8 quantizer, the calibrator, the
sensitivity search and QAT; every default is declared here and nowhere else (``--quick`` shrinks the
``scale``-tagged counts in ``compress.steps.Budget``).
"""
from __future__ import annotations

from dataclasses import dataclass

from compress.errors import HGCError
from compress.steps import DistillParams, Params, bounded, choice, items, option

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
PROVIDERS = ("cpu", "cuda", "tensorrt")
RUNTIMES = ("onnxruntime", "openvino")
METHODS = ("minmax", "percentile", "entropy")
ACTIVATION_TYPES = ("uint8", "int8")


@dataclass
class QATParams(Params):
    """Quantization-aware fine-tuning before the int8 export (``compress.techniques.quantize.qat``)."""

    steps: int = bounded(500, 1, doc="optimizer steps under fake quantization", scale="steps")
    lr: float = bounded(2.5e-5, 0.0, doc="learning rate (Adam, constant)")
    batch_size: int = bounded(16, 1, doc="images per step")
    seed: int = bounded(0, 0, doc="sample stream and augmentation seed")
    checkpoint_every: int = bounded(100, 0, doc="resumable checkpoint every N steps (0: at the end only)")
    calibration_images: int = bounded(64, 1, doc="crops that initialise the activation ranges", scale="calibration")
    distill: DistillParams | None = option(None, "distil from the fp32 teacher: {alpha: 0.5}")


@dataclass
class QuantizeParams(Params):
    """Precision and, for int8, calibration / mixed-precision / QAT settings of the ``quantize`` op."""

    precision: str = choice("int8", PRECISIONS, "numeric format of the artifact")
    provider: str = choice("cpu", PROVIDERS, "onnxruntime execution provider the artifact is for")
    runtime: str = choice("onnxruntime", RUNTIMES, "runtime the artifact is for: bf16 runs in openvino only "
                                                   "(CPUs with AVX512-BF16/AMX); int8 QDQ files run in both")
    calibration_images: int = bounded(256, 1, doc="real benchmark crops for int8 calibration",
                                        scale="calibration")
    calibration: str = choice("minmax", METHODS, "int8 activation range method")
    percentile: float = bounded(99.999, 90.0, 100.0, doc="calibration percentile: the range keeps this percentile")
    per_channel: bool = option(True, "int8 weights per output channel (else per tensor)")
    activation_type: str = choice("uint8", ACTIVATION_TYPES, "int8 activations: uint8 (x86 U8S8) or int8")
    reduce_range: bool = option(False, "int8 weights in 7 bits ([-64, 64]): exact on x86 CPUs without VNNI, whose "
                                       "u8×s8 kernels add product pairs in saturating int16")
    norms_as_conv: bool = option(True, "int8: run pre-activation BatchNorms as depthwise 1×1 int8 convs")
    keep_io_fp32: bool = option(True, "fp16: keep float32 inputs and outputs")
    check_images: int = bounded(64, 1, doc="fp16: crops the converted file is compared on", scale="scoring")
    max_drop: float | None = bounded(None, 0.0, doc="int8: keep sensitive layers fp32 until the PCKh drop ≤ this")
    sensitivity_images: int = bounded(128, 1, doc="crops that rank each candidate alone",
                                        scale="scoring")
    scoring_images: int = bounded(1024, 1, doc="labelled crops that measure the PCKh drop: mixed-precision tries "
                                               "and the step's report", scale="scoring")
    exclude: list[str] = items(list, "node or layer name patterns kept fp32 (fnmatch)")
    qat: QATParams | None = option(None, "int8: quantization-aware fine-tuning first: {steps: 500, lr: 2.5e-5}")

    @property
    def symmetric_activations(self) -> bool:
        """int8 activations with zero point 0: what the GPU providers (CUDA, TensorRT) expect."""
        return self.provider != "cpu"

    def check(self) -> None:
        int8_only = [name for name, on in (("max_drop", self.max_drop is not None), ("exclude", bool(self.exclude)),
                                           ("qat", self.qat is not None), ("reduce_range", self.reduce_range))
                     if on]
        if int8_only and self.precision != "int8":
            raise HGCError(f"{int8_only[0]}: applies to precision int8, not {self.precision}")
        if self.runtime == "openvino" and self.provider != "cpu":
            raise HGCError(f"provider: {self.provider} is an onnxruntime provider; runtime openvino runs on the cpu")
        if self.runtime == "openvino" and self.precision == "int8" and self.qat is None:
            for name, on, instead in (("exclude", bool(self.exclude), "use max_drop for its accuracy control"),
                                      ("reduce_range", self.reduce_range, "NNCF picks the weight range itself")):
                if on:
                    raise HGCError(f"{name}: applies to runtime onnxruntime; runtime openvino quantizes with NNCF "
                                   f"({instead})")
        if self.precision == "bf16" and self.runtime != "openvino":
            raise HGCError("precision: bf16 has no onnxruntime CPU kernels; set runtime: openvino (it runs bf16 on "
                           "CPUs with AVX512-BF16 or AMX)")
        if self.precision == "int8" and self.provider != "cpu" and self.activation_type != "int8":
            raise HGCError(f"activation_type: {self.provider} runs symmetric int8 activations; set it to int8")
