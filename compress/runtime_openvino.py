"""OpenVINO as a runtime: our ONNX files (fp32, fp16, QDQ int8) and OpenVINO IR on the CPU plugin.

The ``openvino`` package is an optional extra (``pip install -e ".[openvino]"``) and is imported inside
functions only. A predictor compiles the model per batch size (static shapes: what a deployment does;
hg2-128 fp32 at batch 1 took 48 ms against 60 ms for the dynamic-batch graph here) with the settings fixed
and recorded: ``INFERENCE_NUM_THREADS``, ``NUM_STREAMS`` 1, ``PERFORMANCE_HINT`` LATENCY, ``INFERENCE_PRECISION_HINT`` and
``ENABLE_CPU_PINNING`` off (onnxruntime does not pin its thread either; on a shared machine a pinned thread
waits for its one busy core).

The precision hint is the one thing OpenVINO decides silently: on CPUs with AVX512-BF16 or AMX its CPU
plugin runs an fp32 model in bf16 by default. ``choose_hint`` makes that decision explicit (the plugin's
own default unless a precision is asked for or the artifact records one), the compiled model's hint is
read back, and the label says what really ran (``fp32 (run as bf16)``), so evaluation and timing use
the same numerics and the results row says which.
"""
from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from compress.errors import HGCError, first_line
from compress.onnx_meta import read_metadata

EXTRA = 'pip install -e ".[openvino]"'
# our precision names ↔ OpenVINO element types (the INFERENCE_PRECISION_HINT values)
OV_TYPES = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
FROM_OV = {"f32": "fp32", "float32": "fp32", "bf16": "bf16", "f16": "fp16", "float16": "fp16"}
# the CPU plugin's OPTIMIZATION_CAPABILITIES entry a precision needs, and the ISA that gives it
CAPABILITY = {"bf16": ("BF16", "AVX512_BF16 or AMX-BF16"), "fp16": ("FP16", "AVX512_FP16 or AMX-FP16")}
STREAMS = 1
IR_SUFFIX = ".xml"


def available() -> bool:
    """Whether the ``openvino`` package is installed (found without importing it)."""
    return importlib.util.find_spec("openvino") is not None


def import_openvino() -> Any:
    """The ``openvino`` module, or one ``HGCError`` line naming the extra that installs it."""
    if not available():
        raise HGCError(f"runtime openvino: the openvino package is not installed; install the extra: {EXTRA}")
    import openvino

    return openvino


def core() -> Any:
    """A fresh ``openvino.Core`` (cheap; each predictor owns one so settings never leak between them)."""
    return import_openvino().Core()


def cpu_capabilities(ov_core: Any = None) -> list[str]:
    """The CPU plugin's ``OPTIMIZATION_CAPABILITIES`` (e.g. FP32, INT8, BF16), which decide bf16/fp16."""
    return [str(c) for c in (ov_core or core()).get_property("CPU", "OPTIMIZATION_CAPABILITIES")]


def ov_precision(value: Any) -> str:
    """Our precision name (fp32, bf16, fp16) of an OpenVINO element type or its string."""
    text = value.to_string() if hasattr(value, "to_string") else str(value)
    return FROM_OV.get(text.lower(), text)


def choose_hint(requested: str | None, artifact: str | None, capabilities: Sequence[str], default: str,
                where: str = "openvino") -> str:
    """The precision hint to compile with (fp32, bf16 or fp16): a pure decision, tested with faked capabilities.

    ``requested`` (``--precision``) wins; else an artifact that records bf16/fp16 as its precision asks for
    it; else the plugin's ``default`` (bf16 on AVX512-BF16/AMX CPUs, fp32 elsewhere) — what a user gets.
    A precision the CPU lacks is one ``HGCError`` naming the missing capability, except an fp16 artifact
    on a CPU without FP16: halving the file is what fp16 is for there, so it runs in the default and the
    tables say ``fp16 (run as fp32)``.
    """
    if requested is not None and requested not in OV_TYPES:
        raise HGCError(f"--precision {requested}: OpenVINO's CPU plugin runs {', '.join(OV_TYPES)} "
                       "(int8 comes from the model file: a QDQ ONNX or an int8 IR)")
    wanted = requested or (artifact if artifact in CAPABILITY else None)
    if requested is None and artifact == "fp16" and CAPABILITY["fp16"][0] not in capabilities:
        wanted = None  # an fp16 file is a storage precision: run in the plugin's default, as onnxruntime does
    if wanted is None:
        return default
    if wanted in CAPABILITY:
        capability, isa = CAPABILITY[wanted]
        if capability not in capabilities:
            why = f"artifact records precision {wanted}" if requested is None else f"--precision {wanted}"
            raise HGCError(f"{where}: {why}, but this CPU cannot run {wanted}: OpenVINO's CPU capabilities are "
                           f"{', '.join(capabilities) or 'none'}, no {capability} (needs {isa})")
    return wanted


def executed_label(artifact: str | None, executed: str) -> str:
    """What ran, for tables: ``fp32``, ``fp32 (run as bf16)``, ``int8 (float parts as bf16)`` …"""
    base = artifact or "fp32"
    if base == "int8":
        return "int8" if executed == "fp32" else f"int8 (float parts as {executed})"
    return base if base == executed else f"{base} (run as {executed})"


def check_ir(path: str) -> None:
    """An IR ``.xml`` needs its ``.bin`` beside it (same stem): refuse one line before OpenVINO reads it."""
    weights = Path(path).with_suffix(".bin")
    if not weights.is_file():
        raise HGCError(f"{path}: OpenVINO IR without its weights file {weights} (copy both files together)")


def read_model(ov_core: Any, path: str) -> Any:
    """An ``openvino.Model`` from an ONNX file or an IR; unreadable input is one ``HGCError`` line."""
    if path.endswith(IR_SUFFIX):
        check_ir(path)
    try:
        return ov_core.read_model(path)
    except Exception as exc:  # OpenVINO raises RuntimeError with a multi-line C++ trace
        raise HGCError(f"{path}: OpenVINO cannot read it: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and not ln.startswith("Exception from")]
    return (lines[-1] if lines else first_line(exc))[:300]


def ir_metadata(model: Any) -> dict[str, Any]:
    """The ``hgc.*`` entries an IR carries in its rt_info (``hgc/<key>``), JSON-decoded like ONNX metadata."""
    if not model.has_rt_info(["hgc"]):
        return {}
    keys = model.get_rt_info(["hgc"]).astype(dict).keys()
    out: dict[str, Any] = {}
    for key in keys:
        text = model.get_rt_info(["hgc", key]).astype(str)
        try:
            out[key] = text if key == "format" else json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out


def model_metadata(path: str, model: Any = None) -> dict[str, Any]:
    """hgc metadata of an ONNX file (``metadata_props``) or an IR (rt_info), decoded."""
    if path.endswith(IR_SUFFIX):
        return ir_metadata(model if model is not None else read_model(core(), path))
    return read_metadata(path)


def artifact_precision(metadata: dict[str, Any]) -> str | None:
    """The precision an hgc artifact records (``quantization.precision``), None for plain float exports."""
    entry = metadata.get("quantization")
    return entry.get("precision") if isinstance(entry, dict) else None


def runtime_precisions(compiled: Any) -> dict[str, int]:
    """Convolutions of the compiled (executed) graph by their runtime precision, e.g. ``{"u8": 133}``."""
    counts: Counter[str] = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) == "Convolution":
            counts[info["runtimePrecision"].astype(str)] += 1
    return dict(sorted(counts.items()))


class OpenVinoPredictor:
    """An ONNX file or OpenVINO IR run by OpenVINO's CPU plugin, behind the predictor interface.

    ``threads`` (≥ 1; None: all available cores), one stream and the precision hint are fixed at compile
    time and recorded (``threads``, ``streams``, ``precision_hint``, ``executed``); ``precision`` asks for
    fp32/bf16/fp16 (default: what the artifact records, else the plugin's default, see ``choose_hint``).
    """

    runtime = "openvino"

    def __init__(self, path: str, device: str = "cpu", threads: int | None = None,
                 precision: str | None = None) -> None:
        if device != "cpu":
            raise HGCError(f"--device {device}: the openvino runtime runs on the CPU here (device cpu)")
        if threads is not None and threads < 1:
            raise HGCError(f"--threads {threads}: must be ≥ 1")
        ov = import_openvino()
        self.core = ov.Core()
        self.model = read_model(self.core, path)
        self.metadata = model_metadata(path, self.model)
        self.precision = artifact_precision(self.metadata)  # what the file is (int8, fp16, bf16; None: fp32)
        self.capabilities = cpu_capabilities(self.core)
        default = ov_precision(self.core.get_property("CPU", "INFERENCE_PRECISION_HINT"))
        self.precision_hint = choose_hint(precision, self.precision, self.capabilities, default, path)
        self.requested_threads = threads  # None: OpenVINO's default (read back after compiling)
        self.streams, self.path, self.device, self.provider = STREAMS, path, device, "CPU"
        self.version = ov.get_version()
        self.input_size = self._input_size(path)
        self.batch: int | None = None  # any batch size runs (compiled once per size)
        self._compiled: dict[int, tuple[Any, Any]] = {}
        first = self._request(1)[0]
        executed = ov_precision(first.get_property("INFERENCE_PRECISION_HINT"))
        if executed != self.precision_hint:
            raise HGCError(f"{path}: OpenVINO compiled it with precision {executed}, not the {self.precision_hint} "
                           f"asked for (CPU capabilities {', '.join(self.capabilities)})")
        self.conv_precisions = runtime_precisions(first)
        if self.precision is None and set(self.conv_precisions) & {"u8", "i8"}:
            self.precision = "int8"  # an int8 IR made elsewhere (e.g. NNCF) carries no hgc metadata
        self.executed = executed_label(self.precision, executed)
        self.threads = int(first.get_property("INFERENCE_NUM_THREADS"))

    def _input_size(self, path: str) -> int:
        inputs, outputs = self.model.inputs, self.model.outputs
        if len(inputs) != 1 or not outputs:
            raise HGCError(f"{path}: expected one image input and a heatmap output, "
                           f"the model has {len(inputs)} inputs and {len(outputs)} outputs")
        shape = inputs[0].get_partial_shape()
        if shape.rank.is_dynamic or shape.rank.get_length() != 4:
            raise HGCError(f"{path}: input shape {shape} is not a 4-D N×3×H×W image batch")
        if shape[2].is_static and shape[3].is_static:
            if shape[2].get_length() != shape[3].get_length():
                raise HGCError(f"{path}: input is {shape[2]}×{shape[3]}; hourglass inputs are square")
            return int(shape[2].get_length())
        config = self.metadata.get("config") or {}
        if "input_size" in config:
            return int(config["input_size"])
        raise HGCError(f"{path}: input size is dynamic and the file has no hgc config metadata to tell it")

    def settings(self) -> dict[str, Any]:
        """The compile settings, as OpenVINO property names (what every timing row records)."""
        threads = {} if self.requested_threads is None else {"INFERENCE_NUM_THREADS": self.requested_threads}
        return {**threads, "NUM_STREAMS": self.streams, "PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False,
                "INFERENCE_PRECISION_HINT": OV_TYPES[self.precision_hint]}

    def _request(self, batch: int) -> tuple[Any, Any]:
        """(compiled model, infer request) for a static batch size, compiled on first use."""
        if batch not in self._compiled:
            model = self.model.clone()
            shape = self.model.inputs[0].get_partial_shape()
            fixed = shape[0].is_static and shape[0].get_length() != batch
            if not fixed:
                model.reshape({0: [batch, 3, self.input_size, self.input_size]})
            try:
                compiled = self.core.compile_model(model, "CPU", self.settings())
            except Exception as exc:  # compile errors are C++ traces; keep the message
                raise HGCError(f"{self.path}: OpenVINO cannot compile it: {_reason(exc)}") from None
            self._compiled[batch] = (compiled, compiled.create_infer_request())
        return self._compiled[batch]

    def __call__(self, images: np.ndarray) -> np.ndarray:
        out = self.run_all(images)
        return out[:, -1] if out.ndim == 5 else out

    def run_all(self, images: np.ndarray) -> np.ndarray:
        """The model's whole first output (every stack of a 5-D export): what export parity compares."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        shape = self.model.inputs[0].get_partial_shape()
        step = shape[0].get_length() if shape[0].is_static else len(images)
        count = len(images)
        if count % step:  # a fixed-batch file: pad with blank images, drop their outputs
            images = np.concatenate([images, np.zeros((step - count % step, *images.shape[1:]), np.float32)])
        parts = []
        for i in range(0, len(images), step):
            _, request = self._request(step)
            request.infer({0: images[i:i + step]})
            parts.append(np.array(request.get_output_tensor(0).data, dtype=np.float32))
        return (parts[0] if len(parts) == 1 else np.concatenate(parts))[:count]

    def describe(self) -> dict[str, Any]:
        """What a timing or results row records about this predictor."""
        return {"runtime": "openvino", "openvino": self.version, "device": "CPU", "threads": self.threads,
                "streams": self.streams, "precision_hint": self.precision_hint, "executed": self.executed,
                "conv_precisions": self.conv_precisions, "capabilities": self.capabilities}
