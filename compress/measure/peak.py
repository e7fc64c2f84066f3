"""The machine's measured peak: a large matrix product through the same runtime, threads and options.

fp32: one MatMul (M = N = K = ``size``); int8: one MatMulInteger (uint8 activations × int8 weights, the
U8S8 form onnxruntime's x86 kernels use for quantized convolutions; int8 × int8 on GPU providers, the
only form onnxruntime's CUDA kernel takes). The weight matrix is a constant so
the runtime may pre-pack it, exactly as it does for convolution weights. Throughput is reported in
GMAC/s (GFLOP/s = 2 × GMAC/s) from the fastest of the timed runs (noise only ever slows a run down, so
the best run is the closest estimate of the physical limit): a model's efficiency is
(MACs / latency) / peak of its precision.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

from compress import runtime_openvino as ov_runtime
from compress.measure.latency import time_predictor
from compress.runtime import open_session


def matmul_model(size: int, int8: bool, signed: bool = False) -> bytes:
    """A one-node ONNX graph ``Y = A · W`` with a constant ``W`` (fp32 MatMul, or u8/s8 × s8 MatMulInteger)."""
    rng = np.random.default_rng(0)
    if int8:
        weight = numpy_helper.from_array(rng.integers(-64, 64, (size, size), dtype=np.int8), "W")
        node = helper.make_node("MatMulInteger", ["A", "W"], ["Y"])
        a_type, y_type = (TensorProto.INT8 if signed else TensorProto.UINT8), TensorProto.INT32
    else:
        weight = numpy_helper.from_array(rng.standard_normal((size, size), dtype=np.float32), "W")
        node = helper.make_node("MatMul", ["A", "W"], ["Y"])
        a_type, y_type = TensorProto.FLOAT, TensorProto.FLOAT
    graph = helper.make_graph([node], "peak", [helper.make_tensor_value_info("A", a_type, [size, size])],
                              [helper.make_tensor_value_info("Y", y_type, [size, size])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return model.SerializeToString()


def ort_peak(threads: int | None, providers: list[str], device_id: int = 0, size: int = 2048, runs: int = 20,
             warmup: int = 2) -> dict[str, float]:
    """fp32 and int8 peak (GMAC/s, best of ``runs``) of onnxruntime with the given providers and threads.

    Operands stay on the device (I/O binding), so a GPU provider is timed on its arithmetic, not on copies.
    """
    device = "cuda" if providers[0] != "CPUExecutionProvider" else "cpu"
    signed = device == "cuda"
    result = {}
    for name, int8 in (("fp32", False), ("int8", True)):
        model = matmul_model(size, int8, signed)
        session = open_session(model, providers, threads, f"peak probe ({name})", device_id)
        rng = np.random.default_rng(1)
        kind = np.int8 if signed else np.uint8
        a = rng.integers(0, 100, (size, size), dtype=kind) if int8 else rng.random((size, size), dtype=np.float32)
        binding = session.io_binding()
        binding.bind_ortvalue_input("A", ort.OrtValue.ortvalue_from_numpy(a, device, device_id))
        binding.bind_output("Y", device, device_id)

        def run(_: Any, session: Any = session, binding: Any = binding) -> None:
            session.run_with_iobinding(binding)

        timing = time_predictor(run, a, runs=runs, warmup=warmup)
        result[name] = size**3 / (timing.summary()["min_ms"] * 1e-3) / 1e9
    return result


def torch_peak(threads: int | None, device: str = "cpu", size: int = 2048, runs: int = 20,
               warmup: int = 2) -> dict[str, float]:
    """fp32 peak (GMAC/s) of ``torch.mm`` with the given threads; int8 is NaN (no general int8 GEMM in eager torch)."""
    if threads is not None:
        torch.set_num_threads(int(threads))
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device)
    w = torch.randn(size, size, generator=gen).to(device)

    def run(_: Any) -> None:
        with torch.inference_mode():
            torch.mm(a, w)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    timing = time_predictor(run, np.empty(0), runs=runs, warmup=warmup)
    return {"fp32": size**3 / (timing.summary()["min_ms"] * 1e-3) / 1e9, "int8": float("nan")}


def qdq_matmul_model(size: int) -> bytes:
    """``Y = DQ(Q(A)) · DQ(W)``: a QDQ int8 matrix product, the form OpenVINO turns into a u8×s8 int8 kernel
    (as it does for the convolutions of a QDQ ONNX file)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.integers(-64, 64, (size, size), dtype=np.int8), "Wq"),
             numpy_helper.from_array(np.array(0.02, np.float32), "sa"),
             numpy_helper.from_array(np.array(0, np.uint8), "za"),
             numpy_helper.from_array(np.array(0.01, np.float32), "sw"),
             numpy_helper.from_array(np.array(0, np.int8), "zw")]
    nodes = [helper.make_node("QuantizeLinear", ["A", "sa", "za"], ["Aq"]),
             helper.make_node("DequantizeLinear", ["Aq", "sa", "za"], ["Ad"]),
             helper.make_node("DequantizeLinear", ["Wq", "sw", "zw"], ["Wd"]),
             helper.make_node("MatMul", ["Ad", "Wd"], ["Y"])]
    graph = helper.make_graph(nodes, "peak_qdq", [helper.make_tensor_value_info("A", TensorProto.FLOAT, [size, size])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [size, size])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()


def ov_peak(threads: int | None, precision: str = "fp32", size: int = 2048, runs: int = 20,
            warmup: int = 2) -> dict[str, float]:
    """fp32 (in the ``precision`` hint: fp32, or bf16 where the CPU runs it) and QDQ-int8 peak (GMAC/s) of OpenVINO.

    Compiled with the same settings as ``OpenVinoPredictor`` (threads, one stream, latency hint).
    """
    ov_core = ov_runtime.core()
    settings = {"NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_PRECISION_HINT": ov_runtime.OV_TYPES[precision],
                **({"INFERENCE_NUM_THREADS": int(threads)} if threads else {})}
    a = np.random.default_rng(1).random((size, size), dtype=np.float32)
    result = {}
    with tempfile.TemporaryDirectory(prefix="hgc-peak-") as scratch:
        for name, payload in (("fp32", matmul_model(size, False)), ("int8", qdq_matmul_model(size))):
            path = os.path.join(scratch, f"{name}.onnx")
            with open(path, "wb") as handle:
                handle.write(payload)
            request = ov_core.compile_model(ov_core.read_model(path), "CPU", settings).create_infer_request()
            timing = time_predictor(lambda x, r=request: r.infer({0: x}), a, runs=runs, warmup=warmup)
            result[name] = size**3 / (timing.summary()["min_ms"] * 1e-3) / 1e9
    return result
