"""Calibration for int8: real benchmark crops from the data pipeline, a data reader, one calibration pass.

Activation ranges are measured on evaluation crops (``PoseDataset``, no augmentation) of the *training*
source, never on random noise (which lost half of PCKh@0.2 when tried) and never on the split the final
evaluation scores. Calibration takes positions ``[0, N)``; the labelled crops that sensitivity analysis
scores come from the positions after them, so no image does both jobs.

``Calibration`` rewrites the pre-activation BatchNorms as depthwise 1×1 convs (``batchnorms_as_conv``:
onnxruntime has no int8 BatchNormalization), then runs onnxruntime's pre-processing (symbolic shape
inference + basic graph optimisation, which keeps the symbolic batch dimension) and its calibrator once,
caching the tensor ranges; every variant quantized afterwards (full int8, each layer alone, with
exclusions) reuses that cache.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    create_calibrator,
    quantize_static,
    save_tensors_data,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from compress.errors import HGCError, first_line
from compress.measure.kernels import NORM_CONV_SUFFIX
from compress.onnx_meta import read_metadata
from compress.techniques.quantize.config import QuantizeParams
from compress.techniques.quantize.graph import keep_float

CALIBRATION_BATCH = 8
CALIBRATION_CHUNK = 16  # images per collect pass: the calibrators hold every intermediate tensor of a pass
ENTROPY_BINS = 512  # histogram bins over [-max, max]; the KL search tries (512 - 255) / 2 thresholds per tensor


def model_input(onnx_path: str) -> tuple[str, list[Any], int]:
    """(input name, shape with symbolic dims as strings, elem type) of a single-image-input ONNX file."""
    try:
        graph = onnx.load(onnx_path, load_external_data=False).graph
    except Exception as exc:  # protobuf decode errors and friends
        raise HGCError(f"{onnx_path}: not an ONNX file ({first_line(exc)})") from None
    inits = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in inits]
    if len(inputs) != 1:
        raise HGCError(f"{onnx_path}: expected one image input, found {len(inputs)}")
    tensor = inputs[0].type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim]
    return inputs[0].name, dims, tensor.elem_type


def input_size(onnx_path: str) -> int:
    """Side S of the square N×3×S×S input: from the graph, or from ``hgc.config`` when it is symbolic."""
    _, shape, _ = model_input(onnx_path)
    if isinstance(shape[-1], int) and shape[-1] > 0:
        return int(shape[-1])
    config = read_metadata(onnx_path).get("config") or {}
    if "input_size" not in config:
        raise HGCError(f"{onnx_path}: input size is dynamic and the file has no hgc.config to tell it")
    return int(config["input_size"])


def check_images(images: Any, shape: list[Any], wanted: int, where: str) -> np.ndarray:
    """``images`` as float32 N×C×H×W matching the model input ``shape``, at least ``wanted`` of them.

    Wrong rank, channels or size and too few images are one-line errors naming what was expected.
    """
    array = np.asarray(images)
    expect = "×".join(str(d) if isinstance(d, int) and d > 0 else "N" for d in shape)
    if array.ndim != len(shape) or any(isinstance(d, int) and d > 0 and a != d
                                       for a, d in zip(array.shape[1:], shape[1:])):
        raise HGCError(f"{where}: calibration images have shape {tuple(array.shape)}; the model takes {expect}")
    if not np.issubdtype(array.dtype, np.floating) or not np.all(np.isfinite(array)):
        raise HGCError(f"{where}: calibration images must be finite floats in [0, 1], got {array.dtype}")
    if len(array) < wanted:
        raise HGCError(f"{where}: asked for {wanted} calibration images, got only {len(array)}")
    return np.ascontiguousarray(array[:wanted], dtype=np.float32)


def _reader(images: np.ndarray, name: str, batch: int) -> Any:
    """An onnxruntime ``CalibrationDataReader`` feeding ``images`` in batches of ``batch``."""
    class ImageReader(CalibrationDataReader):
        """Feeds fixed image batches to the calibrator; ``rewind`` restarts the pass."""

        def __init__(self) -> None:
            self.position = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.position >= len(images):
                return None
            chunk = images[self.position:self.position + batch]
            self.position += batch
            return {name: chunk}

        def rewind(self) -> None:
            self.position = 0

        def __len__(self) -> int:
            return -(-len(images) // batch)

    return ImageReader()


@contextlib.contextmanager
def in_directory(path: str) -> Iterator[None]:
    """Run the block with ``path`` as the working directory (restored afterwards).

    onnxruntime's symbolic shape inference writes ``sym_shape_infer_temp.onnx`` (+ data) into the cwd when
    it gives up; running it inside a temporary directory keeps the user's directory clean.
    """
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def preprocess(onnx_in: str, onnx_out: str, workdir: str) -> str:
    """onnxruntime's quantization pre-processing of ``onnx_in`` into ``onnx_out``; returns what was done.

    Symbolic shape inference needs ``auto_merge`` for the hourglass (its Resize outputs carry derived
    batch symbols); if it still fails, ONNX shape inference alone is used — enough for a CNN.
    """
    with in_directory(workdir), _quiet():
        try:
            quant_pre_process(onnx_in, onnx_out, auto_merge=True)
            return "symbolic shape inference + basic optimisation"
        except Exception:  # the shape-inference tool raises a bare Exception when incomplete
            pass
        try:
            quant_pre_process(onnx_in, onnx_out, skip_symbolic_shape=True)
        except Exception as exc:  # onnxruntime cannot even load the graph
            reason = first_line(exc)
            raise HGCError(f"{onnx_in}: quantization pre-processing failed: {reason}") from None
        return "onnx shape inference + basic optimisation (symbolic inference failed)"


def batchnorms_as_conv(proto: Any) -> list[str]:
    """Rewrite every inference BatchNormalization as the equal depthwise 1×1 Conv; returns their node names.

    The exporter folds the BatchNorms that follow a convolution; what is left are the pre-activation
    norms of the bottlenecks. onnxruntime has no int8 BatchNormalization, so left alone each one runs in
    float between DequantizeLinear/QuantizeLinear and forces NHWC↔NCHW transposes around it. As a depthwise
    conv (weight γ/√(σ²+ε), bias β − μ·weight) it becomes one more ``QLinearConv``, exact in its per-channel
    int8 weight; the node keeps its name with ``NORM_CONV_SUFFIX`` so it is counted apart from conv layers.
    """
    inits = {t.name: t for t in proto.graph.initializer}
    nodes, rewritten = [], []
    for node in proto.graph.node:
        params = list(node.input[1:5])
        training = any(a.name == "training_mode" and a.i for a in node.attribute)
        if node.op_type != "BatchNormalization" or training or len(node.output) != 1 \
                or not all(p in inits for p in params):
            nodes.append(node)
            continue
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        gamma, beta, mean, var = (numpy_helper.to_array(inits[p]).astype(np.float64) for p in params)
        weight = gamma / np.sqrt(var + eps)
        name = f"{node.name or node.output[0]}{NORM_CONV_SUFFIX}"
        proto.graph.initializer.extend([
            numpy_helper.from_array(weight.astype(np.float32).reshape(-1, 1, 1, 1), f"{name}.weight"),
            numpy_helper.from_array((beta - mean * weight).astype(np.float32), f"{name}.bias")])
        nodes.append(helper.make_node("Conv", [node.input[0], f"{name}.weight", f"{name}.bias"], list(node.output),
                                      name=name, group=len(weight), kernel_shape=[1, 1]))
        rewritten.append(node.name)
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    used = {name for node in proto.graph.node for name in node.input}
    for tensor in [t for t in proto.graph.initializer if t.name not in used]:
        proto.graph.initializer.remove(tensor)
    return rewritten


class Calibration:
    """One calibration pass over a float model, reusable for any number of quantized variants.

    Use as a context manager: the pre-processed model and range cache live in a temporary directory.
    """

    def __init__(self, onnx_fp32: str, images: np.ndarray, config: QuantizeParams) -> None:
        self.config = config
        self.source, self.method, self.percentile = onnx_fp32, config.calibration, config.percentile
        norms_as_conv = config.norms_as_conv and config.per_channel
        self.input_name, self.shape, _ = model_input(onnx_fp32)
        self.images = check_images(images, self.shape, len(images), onnx_fp32)
        self._tmp = tempfile.TemporaryDirectory(prefix="hgc-quant-")
        self.dir = Path(self._tmp.name)
        self.model = str(self.dir / "preprocessed.onnx")
        self.cache = str(self.dir / "ranges.json")
        self.norms_as_conv: list[str] = []
        self._calibrated = False
        try:
            self.preprocessing = self._prepare(str(Path(onnx_fp32).resolve()), norms_as_conv)
        except BaseException:
            self.close()
            raise

    def _prepare(self, source: str, norms_as_conv: bool) -> str:
        """BatchNorms rewritten (optionally), then onnxruntime's pre-processing into ``self.model``."""
        if norms_as_conv:
            proto = onnx.load(source)
            self.norms_as_conv = batchnorms_as_conv(proto)
            source = str(self.dir / "float.onnx")
            onnx.save_model(proto, source)
        return preprocess(source, self.model, str(self.dir))

    def __enter__(self) -> "Calibration":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Delete the temporary directory (pre-processed model and cached ranges)."""
        self._tmp.cleanup()

    def calibrate(self) -> None:
        """Run the calibrator once over the images and cache the tensor ranges (later calls do nothing).

        Entropy gets 512 histogram bins and 255 quantized bins: with onnxruntime's defaults (128 and 128)
        the KL search has a single candidate and entropy silently equals minmax.
        """
        if self._calibrated:
            return
        methods = {"minmax": (CalibrationMethod.MinMax, {}),
                   "percentile": (CalibrationMethod.Percentile, {"percentile": self.percentile}),
                   "entropy": (CalibrationMethod.Entropy, {"num_bins": ENTROPY_BINS, "num_quantized_bins": 255})}
        method, options = methods[self.method]
        batch = self.shape[0] if isinstance(self.shape[0], int) and self.shape[0] > 0 else CALIBRATION_BATCH
        with in_directory(str(self.dir)), _quiet():
            calibrator = create_calibrator(Path(self.model), None, str(self.dir / "augmented.onnx"),
                                           calibrate_method=method, extra_options=options)
            for start in range(0, len(self.images), CALIBRATION_CHUNK):  # bounded memory: merged per chunk
                chunk = self.images[start:start + CALIBRATION_CHUNK]
                calibrator.collect_data(_reader(chunk, self.input_name, batch))
            save_tensors_data(calibrator.compute_data(), self.cache)
            del calibrator
        self._calibrated = True

    def quantize(self, onnx_out: str, *, nodes_to_exclude: list[str] | None = None,
                 nodes_to_quantize: list[str] | None = None) -> int:
        """Write a static QDQ model (int8 weights; uint8 or int8 activations) with the cached ranges.

        Weight granularity, activation type and symmetry come from the config. ``nodes_to_quantize`` limits
        quantization to those nodes (sensitivity: one layer alone); ``nodes_to_exclude`` stay fp32 —
        really, see ``graph.keep_float`` (returns its count of removed Q/DQ pairs).
        """
        per_channel, activation_type = self.config.per_channel, self.config.activation_type
        symmetric_activations = self.config.symmetric_activations
        self.calibrate()
        method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                  "entropy": CalibrationMethod.Entropy}[self.method]
        with in_directory(str(self.dir)), _quiet():
            quantize_static(self.model, onnx_out, None, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            activation_type=QuantType.QUInt8 if activation_type == "uint8" else QuantType.QInt8,
                            weight_type=QuantType.QInt8, reduce_range=self.config.reduce_range,
                            nodes_to_exclude=list(nodes_to_exclude or []),
                            nodes_to_quantize=list(nodes_to_quantize or []), calibrate_method=method,
                            calibration_cache_path=self.cache,
                            extra_options={"ActivationSymmetric": True} if symmetric_activations else None)
        if not nodes_to_exclude:
            return 0
        proto = onnx.load(onnx_out)
        removed = keep_float(proto, set(nodes_to_exclude))
        onnx.save_model(proto, onnx_out)
        return removed


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the calibrator's progress prints and onnxruntime's advisory log lines for one block."""
    loggers = [logging.getLogger(), logging.getLogger("onnxruntime")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
