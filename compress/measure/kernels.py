"""What onnxruntime really runs of an ONNX file: its kernels counted by data type (int8, fp16, float).

A QDQ file only *asks* for int8: onnxruntime's graph transformers (ORT_ENABLE_ALL) fuse a
DequantizeLinear → Conv → QuantizeLinear group into one ``QLinearConv`` kernel where a kernel exists,
and otherwise run the float operator between the Q/DQ nodes. Counting nodes of the *saved optimized
graph* (``optimized_model_filepath``) is therefore the only honest count of int8 convolutions.

Data types are propagated through the optimized graph: QuantizeLinear and the ``QLinear*`` kernels produce
8-bit tensors, DequantizeLinear float ones, data-movement ops (MaxPool, Resize, Transpose, …) keep the type
of their input. A node is "int8" when its data input is 8-bit, "float" otherwise.
"""
from __future__ import annotations

import collections
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

import onnx
import onnxruntime as ort
from onnx import TensorProto

from compress.errors import HGCError, first_line
from compress.runtime import session_options

INT8_CONV_OPS = ("QLinearConv", "ConvInteger")
NORM_CONV_SUFFIX = ".bn_as_conv"  # BatchNorms rewritten as depthwise 1×1 convs carry this in their node name
FLOAT_CONV_OPS = ("Conv", "FusedConv", "ConvTranspose", "NhwcFusedConv")
QLINEAR_PREFIX = "QLinear"
KEEPS_TYPE = {"MaxPool", "NhwcMaxPool", "Resize", "Upsample", "Transpose", "Reshape", "Unsqueeze", "Squeeze",
              "Flatten", "Identity", "Slice", "Split", "Concat", "Pad", "Gather", "ReorderInput", "ReorderOutput",
              "AveragePool"}
BOOKKEEPING = {"QuantizeLinear", "DequantizeLinear", "Cast", "Transpose", "ReorderInput", "ReorderOutput",
               "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity", "Shape", "Constant"}
# Why onnxruntime's CPU provider leaves an op type in float (README §Quantization explains them).
WHY_FLOAT = {
    "BatchNormalization": "pre-activation norm after a residual Add (norms_as_conv off): no conv precedes it "
                          "to fold into, and the CPU provider has no int8 BatchNormalization kernel",
    "ConvTranspose": "the CPU provider has no int8 ConvTranspose kernel (runs DQ → float → Q)",
    "Resize": "no 8-bit Resize input here (it carries the float stream of an Add or conv kept fp32)",
    "MaxPool": "it carries the float stream of an Add or conv kept fp32",
    "Add": "kept fp32 (sensitivity / exclude), or one input is the float stream of a node kept fp32 "
           "(no QLinearAdd)",
    "Conv": "kept fp32 (exclude / sensitivity), or it consumes the float output of a layer kept fp32",
    "FusedConv": "float Conv fused with its activation: kept fp32, or fed by a layer kept fp32",
    "Concat": "kept fp32, or one of its inputs is the float output of a node kept fp32",
    "GroupNormalization": "no int8 GroupNormalization kernel",
    "InstanceNormalization": "no int8 InstanceNormalization kernel",
    "Sub": "input normalisation inside the graph runs on the float image",
    "Mul": "input normalisation inside the graph runs on the float image",
}


@dataclass
class KernelCount:
    """Kernels of an optimized graph: int8 and float convolutions, every other op by data type.

    Conv counts are of conv *layers*; BatchNorms rewritten as depthwise convs are counted apart
    (``*_norm_convs``). In a float graph onnxruntime's NCHWc transformer turns BatchNorms into convs
    itself, so there ``float_convs`` can exceed the number of conv layers.
    """

    int8_convs: int = 0
    float_convs: int = 0
    qdq_float_convs: int = 0
    int8_norm_convs: int = 0
    float_norm_convs: int = 0
    int8_ops: dict[str, int] = field(default_factory=dict)
    float_ops: dict[str, int] = field(default_factory=dict)
    conversions: dict[str, int] = field(default_factory=dict)
    fp16_ops: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able counts plus, for each float op type, why it stayed float."""
        why = {op: WHY_FLOAT[op] for op in self.float_ops if op in WHY_FLOAT}
        return {"int8_convs": self.int8_convs, "float_convs": self.float_convs,
                "qdq_float_convs": self.qdq_float_convs, "int8_norm_convs": self.int8_norm_convs,
                "float_norm_convs": self.float_norm_convs, "int8_ops": dict(self.int8_ops),
                "float_ops": dict(self.float_ops), "fp16_ops": dict(self.fp16_ops),
                "conversions": dict(self.conversions), "why_float": why}


def optimized_graph(onnx_path: str, provider: str = "CPUExecutionProvider", threads: int = 1) -> Any:
    """The ``ModelProto`` onnxruntime runs for ``onnx_path`` at ORT_ENABLE_ALL on ``provider``.

    The optimized file is written to a temporary directory and read back; nothing stays behind.
    """
    with tempfile.TemporaryDirectory(prefix="hgc-ortopt-") as tmp:
        options = session_options(threads)
        options.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        try:
            session = ort.InferenceSession(onnx_path, sess_options=options, providers=[provider])
        except Exception as exc:  # onnxruntime's own exception classes
            raise HGCError(f"{onnx_path}: onnxruntime cannot load it: {first_line(exc)}") from None
        del session
        return onnx.load(options.optimized_model_filepath)


def _elem_types(proto: Any) -> dict[str, str]:
    """Tensor name → 'q' (8-bit), 'h' (16-bit float), 'f' (float/other) by forward propagation."""
    def kind(elem: int) -> str:
        if elem in (TensorProto.UINT8, TensorProto.INT8):
            return "q"
        return "h" if elem in (TensorProto.FLOAT16, TensorProto.BFLOAT16) else "f"

    types = {t.name: kind(t.data_type) for t in proto.graph.initializer}
    types.update({v.name: kind(v.type.tensor_type.elem_type) for v in proto.graph.input})
    for node in proto.graph.node:
        first = types.get(node.input[0], "f") if node.input else "f"
        if node.op_type == "QuantizeLinear" or node.op_type.startswith(QLINEAR_PREFIX) \
                or node.op_type == "DynamicQuantizeLinear":
            out = "q"
        elif node.op_type == "DequantizeLinear":
            out = "f"
        elif node.op_type == "Cast":
            to = next((a.i for a in node.attribute if a.name == "to"), TensorProto.FLOAT)
            out = kind(to)
        elif node.op_type in KEEPS_TYPE:
            out = first
        else:
            out = "h" if first == "h" else "f"
        for name in node.output:
            types[name] = out
    return types


def count_kernels(proto: Any) -> KernelCount:
    """Count the kernels of an optimized graph by data type (module docstring: how)."""
    types = _elem_types(proto)
    producers = {out: node.op_type for node in proto.graph.node for out in node.output}
    counts: dict[str, collections.Counter] = {k: collections.Counter() for k in ("q", "f", "h", "conv")}
    result = KernelCount()
    for node in proto.graph.node:
        op = node.op_type
        data = types.get(node.input[0], "f") if node.input else "f"
        norm = NORM_CONV_SUFFIX in node.name
        if op in INT8_CONV_OPS:
            result.int8_norm_convs += norm
            result.int8_convs += not norm
        elif op in FLOAT_CONV_OPS:
            result.float_norm_convs += norm
            result.float_convs += not norm
            if producers.get(node.input[0]) == "DequantizeLinear":
                result.qdq_float_convs += 1
        if op in BOOKKEEPING:
            counts["conv"][op] += 1
        elif op.startswith(QLINEAR_PREFIX) or data == "q":
            counts["q"][op] += 1
        elif data == "h":
            counts["h"][op] += 1
        else:
            counts["f"][op] += 1
    result.int8_ops = dict(sorted(counts["q"].items()))
    result.float_ops = dict(sorted(counts["f"].items()))
    result.fp16_ops = dict(sorted(counts["h"].items()))
    result.conversions = dict(sorted(counts["conv"].items()))
    return result


def runtime_kernels(onnx_path: str, provider: str = "CPUExecutionProvider", threads: int = 1) -> KernelCount:
    """Kernel counts of ``onnx_path`` as onnxruntime optimizes it for ``provider``.

    Fused int8 kernels keep the node name (so BatchNorm convs are told apart by ``NORM_CONV_SUFFIX``); the
    float NCHWc kernels are renamed, so float BatchNorm convs = those in the file − the int8 ones.
    """
    counts = count_kernels(optimized_graph(onnx_path, provider, threads))
    in_file = sum(NORM_CONV_SUFFIX in n.name for n in onnx.load(onnx_path, load_external_data=False).graph.node)
    moved = max(0, in_file - counts.int8_norm_convs - counts.float_norm_convs)
    counts.float_norm_convs += min(moved, counts.float_convs)
    counts.float_convs -= min(moved, counts.float_convs)
    return counts
