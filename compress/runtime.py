"""Run any model the toolkit makes behind one interface: images in, last-stack heatmaps out.

A predictor is a callable float32 N×3×H×W → N×J×h×w with an ``input_size`` attribute, so evaluation
and timing do not care whether a PyTorch checkpoint (eager or ``torch.compile``, CPU or CUDA) or an
exported ONNX file (onnxruntime with any installed execution provider, or OpenVINO: ``runtime_openvino``)
runs underneath.

Every predictor also says what it is (``runtime``, ``provider``, ``device``, ``threads``, ``path``) so
a timing row records exactly what was timed.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from compress.errors import HGCError, first_line
from compress.onnx_meta import read_metadata
from compress.packed.model import load_model
from compress.runtime_openvino import IR_SUFFIX, OpenVinoPredictor

# Short names accepted for onnxruntime execution providers (full names are accepted too).
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "dnnl": "DnnlExecutionProvider",
}
GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
RUNTIME_NAMES = ("onnxruntime", "openvino", "torch")  # the engines behind ``runtime=`` / ``--runtime``


def check_device(device: str, need_torch_cuda: bool = True) -> str:
    """Validate a ``--device`` value (cpu, cuda, cuda:N) and, for PyTorch, that CUDA is really there."""
    if not (device == "cpu" or re.fullmatch(r"cuda(:\d+)?", device)):
        raise HGCError(f"--device {device!r}: expected cpu, cuda or cuda:N")
    if need_torch_cuda and device.startswith("cuda") and not torch.cuda.is_available():
        raise HGCError(f"--device {device}: CUDA is not available on this machine (available: cpu)")
    return device


class TorchPredictor:
    """A PyTorch hourglass on CPU or CUDA, eager or compiled with ``torch.compile``.

    ``threads`` sets torch's intra-op thread count (process-wide in PyTorch) so timings are reproducible.
    """

    runtime = "torch"

    def __init__(self, model: torch.nn.Module, device: str = "cpu", *, compile: bool = False,
                 threads: int | None = None, path: str = "") -> None:
        check_device(device)
        if threads is not None:
            torch.set_num_threads(int(threads))
        self.model = model.to(device).eval()
        self.device = device
        self.input_size = model.config.input_size
        self.threads = torch.get_num_threads()
        self.provider = "cuda" if device.startswith("cuda") else "cpu"
        self.path = path
        self.batch: int | None = None  # any batch size runs natively
        self.runtime = "torch.compile" if compile else "torch"
        self._forward = torch.compile(self.model) if compile else self.model

    def __call__(self, images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = self._forward(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(self.device))
        return out[:, -1].float().cpu().numpy()


def resolve_providers(provider: str | None, device: str) -> list[str]:
    """onnxruntime provider list for a request (``cpu``/``cuda``/``tensorrt`` or a full name), CPU as fallback.

    Asking for a provider this onnxruntime build lacks is a one-line error listing the available ones.
    """
    available = ort.get_available_providers()
    if provider is None:
        provider = "cuda" if device.startswith("cuda") else "cpu"
    name = PROVIDER_ALIASES.get(provider.lower(), provider)
    if name not in available:
        hint = " (GPU providers come with `pip install hourglass-compress[gpu]`)" if name in GPU_PROVIDERS else ""
        raise HGCError(f"--provider {provider}: onnxruntime has no {name} here; available: "
                       f"{', '.join(available)}{hint}")
    chain = [name]
    if name == "TensorrtExecutionProvider" and "CUDAExecutionProvider" in available:
        chain.append("CUDAExecutionProvider")
    if name != "CPUExecutionProvider":
        chain.append("CPUExecutionProvider")
    return chain


def session_options(threads: int | None) -> Any:
    """Session options used for every timed onnxruntime session: full graph optimisation, fixed threads.

    Shared by model sessions and the peak-throughput probes so both run under the same conditions.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    options.log_severity_level = 3  # errors only: no provider-assignment chatter on stderr
    return options


def tensorrt_options(precision: str | None) -> dict[str, Any]:
    """TensorRT provider flags for an artifact of ``precision`` (fp32 when unknown).

    TensorRT builds fp16 kernels only with ``trt_fp16_enable``, and int8 ones from a QDQ file's own
    scales with ``trt_int8_enable`` (no calibration table); fp16 stays on for int8 layers left float.
    """
    return {"trt_fp16_enable": precision in ("fp16", "int8"), "trt_int8_enable": precision == "int8"}


def artifact_precision(path: str) -> str | None:
    """The precision an hgc artifact records (``hgc.quantization``), or None for float exports and others."""
    try:
        entry = read_metadata(path).get("quantization")
    except HGCError:  # an unreadable file: open_session reports it in its own words
        return None
    return entry.get("precision") if isinstance(entry, dict) else None


def open_session(model: str | bytes, providers: list[str], threads: int | None, where: str,
                 device_id: int = 0, precision: str | None = None) -> Any:
    """An onnxruntime session for a file or serialized model; unreadable input is a one-line ``HGCError``.

    GPU providers get ``device_id``; TensorRT also gets the flags for the artifact's ``precision``.
    """
    def entry(name: str) -> Any:
        if name not in GPU_PROVIDERS:
            return name
        extra = tensorrt_options(precision) if name == "TensorrtExecutionProvider" else {}
        return (name, {"device_id": device_id, **extra})

    chain = [entry(p) for p in providers]
    try:
        session = ort.InferenceSession(model, sess_options=session_options(threads), providers=chain)
    except Exception as exc:  # onnxruntime raises its own exception classes (InvalidProtobuf, Fail, …)
        reason = first_line(exc)
        raise HGCError(f"{where}: onnxruntime cannot load it as an ONNX model: {reason}") from None
    if session.get_providers()[0] != providers[0]:
        raise HGCError(f"{where}: onnxruntime fell back to {session.get_providers()[0]} "
                       f"instead of {providers[0]} (driver or library missing?)")
    return session


@dataclass
class ImageInput:
    """An ONNX session's image input: name, dtype fed, side S of the N×3×S×S batch, fixed batch (None: dynamic)."""

    name: str
    dtype: type
    size: int
    batch: int | None


def image_input(session: Any, path: str) -> ImageInput:
    """The one N×3×S×S image input of an onnxruntime session; anything else is a one-line ``HGCError``.

    A dynamic side is read from the file's ``hgc.config`` metadata; fp16 I/O exports are fed float16.
    """
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise HGCError(f"{path}: expected one image input, the model has {len(inputs)} inputs")
    shape = list(inputs[0].shape)
    if len(shape) != 4:
        raise HGCError(f"{path}: input {inputs[0].name!r} has rank {len(shape)} (shape {shape}); "
                       "expected a 4-D N×3×H×W image batch")
    height, width = shape[2], shape[3]
    if isinstance(height, int) and isinstance(width, int) and height > 0:
        if height != width:
            raise HGCError(f"{path}: input is {height}×{width}; hourglass inputs are square")
        size = height
    else:
        config = session.get_modelmeta().custom_metadata_map.get("hgc.config")
        if not config:
            raise HGCError(f"{path}: input size is dynamic and the file has no hgc.config metadata to tell it")
        size = int(json.loads(config)["input_size"])
    dtype = np.float16 if inputs[0].type == "tensor(float16)" else np.float32
    return ImageInput(inputs[0].name, dtype, size, shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None)


class OrtPredictor:
    """An ONNX file run by onnxruntime: input ``image`` N×3×S×S, first output = heatmaps.

    A 5-D output (N×stacks×J×h×w, as ``hgc export`` writes) is reduced to its last stack; a file with a
    fixed batch size runs bigger batches chunk by chunk, and fp16 inputs/outputs are converted, so
    evaluation and timing work on any export.
    """

    runtime = "onnxruntime"

    def __init__(self, path: str, device: str = "cpu", provider: str | None = None,
                 threads: int | None = None) -> None:
        check_device(device, need_torch_cuda=False)
        providers = resolve_providers(provider, device)
        device_id = int(device.partition(":")[2] or 0)
        precision = artifact_precision(path) if providers[0] == "TensorrtExecutionProvider" else None
        self.session = open_session(path, providers, threads, path, device_id, precision)
        outputs = self.session.get_outputs()
        image = image_input(self.session, path)
        if not outputs or len(outputs[0].shape) not in (4, 5):
            raise HGCError(f"{path}: expected a 4-D or 5-D heatmap output, got {outputs[0].shape if outputs else None}")
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.input_name, self.output_name = image.name, outputs[0].name
        self.input_dtype, self.input_size, self.batch = image.dtype, image.size, image.batch
        self.path, self.device = path, device
        self.provider = self.session.get_providers()[0]
        self.threads = threads  # None: onnxruntime's default (one per physical core)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=self.input_dtype)
        count, step = len(images), self.batch or len(images)
        if count % step:  # a fixed batch larger than what is left: pad with blank images, drop their outputs
            pad = np.zeros((step - count % step, *images.shape[1:]), dtype=images.dtype)
            images = np.concatenate([images, pad])
        parts = [self.session.run([self.output_name], {self.input_name: images[i:i + step]})[0]
                 for i in range(0, len(images), step)]
        out = (parts[0] if len(parts) == 1 else np.concatenate(parts))[:count].astype(np.float32, copy=False)
        return out[:, -1] if out.ndim == 5 else out


def load_predictor(path: str, device: str = "cpu", provider: str | None = None, threads: int | None = None,
                   compile: bool = False, runtime: str | None = None, precision: str | None = None) -> Any:
    """Open a checkpoint (``.pt`` or packed ``.hgz``, PyTorch) or an exported ``.onnx`` (onnxruntime) as a predictor.

    ``provider`` picks the onnxruntime execution provider (cpu, cuda, tensorrt or a full name);
    ``compile`` wraps a checkpoint in ``torch.compile``; unknown file kinds are a one-line error.
    ``runtime`` ``openvino`` runs an ONNX file (or an IR ``.xml``, which always runs there) in OpenVINO with
    the ``precision`` hint (``compress.runtime_openvino``); onnxruntime refuses a precision it cannot run.
    """
    if not os.path.isfile(path):
        raise HGCError(f"{path}: no such model file")
    if threads is not None and threads < 1:
        raise HGCError(f"--threads {threads}: must be ≥ 1")
    runtime = check_runtime_name(runtime, path)
    if runtime == "openvino":
        if provider is not None or compile:
            raise HGCError(f"{path}: --{'provider' if provider else 'compile'} does not apply to the openvino runtime")
        return OpenVinoPredictor(path, device, threads, precision)
    if precision not in (None, "fp32"):
        raise HGCError(f"--precision {precision}: applies to the openvino runtime (its INFERENCE_PRECISION_HINT); "
                       f"{runtime or 'onnxruntime'} runs {os.path.basename(path)} in its own precision")
    if path.endswith((".pt", ".hgz")):
        if provider is not None:
            raise HGCError(f"{path}: --provider applies to ONNX files; a checkpoint runs in PyTorch")
        model, _ = load_model(path)  # a packed .hgz runs as its unpacked network
        return TorchPredictor(model, device, compile=compile, threads=threads, path=path)
    if path.endswith(".onnx"):
        if compile:
            raise HGCError(f"{path}: --compile applies to checkpoints (torch.compile); ONNX runs in onnxruntime")
        check_ort_precision(path)
        return OrtPredictor(path, device, provider, threads)
    raise HGCError(f"{path}: unknown model file type (expected .pt, .hgz, .onnx or an OpenVINO .xml)")


def check_runtime_name(runtime: str | None, path: str) -> str | None:
    """``runtime`` validated against the file: None (by file type), torch, onnxruntime or openvino.

    An OpenVINO IR runs in OpenVINO only; a checkpoint in PyTorch only.
    """
    if runtime not in (None, *RUNTIME_NAMES):
        raise HGCError(f"--runtime {runtime}: expected one of {', '.join(RUNTIME_NAMES)}")
    if path.endswith(IR_SUFFIX):
        if runtime not in (None, "openvino"):
            raise HGCError(f"{path}: an OpenVINO IR runs in the openvino runtime, not {runtime}")
        return "openvino"
    if runtime == "openvino" and not path.endswith(".onnx"):
        raise HGCError(f"{path}: the openvino runtime runs .onnx files and OpenVINO IR (.xml)")
    if runtime == "onnxruntime" and not path.endswith(".onnx"):
        raise HGCError(f"{path}: onnxruntime runs .onnx files")
    if runtime == "torch" and path.endswith(".onnx"):
        raise HGCError(f"{path}: an ONNX file runs in onnxruntime or openvino, not torch")
    return runtime


def check_ort_precision(path: str) -> None:
    """Refuse an artifact recording a precision onnxruntime cannot run (bf16: made for OpenVINO) in one line."""
    if artifact_precision(path) == "bf16":
        raise HGCError(f"{path}: a bf16 artifact; onnxruntime's CPU provider has no bfloat16 kernels, run it with "
                       "--runtime openvino on a CPU with AVX512-BF16/AMX")


def describe_predictor(predictor: Any) -> dict[str, Any]:
    """What ran, for a results or timing row: runtime, provider, threads and, in OpenVINO, the precision hint,
    streams and the executed precision (``fp32 (run as bf16)``)."""
    if hasattr(predictor, "describe"):
        return predictor.describe()
    return {"runtime": predictor.runtime, "provider": predictor.provider, "threads": predictor.threads}
