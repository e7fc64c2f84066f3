"""Size and cost of a model: parameters and multiply-accumulates, for PyTorch modules and ONNX files.

MACs (multiply-accumulates of one image at the model's input size, batch 1) count the layers that do
the arithmetic: Conv2d (output positions × Cin/groups × kH × kW × Cout), ConvTranspose2d (input
positions × Cin × Cout/groups × kH × kW: every input position scatters one kernel) and Linear/MatMul/Gemm
(M × N × K). Norms, activations, pooling, resizing and additions are not counted (they are < 1 % of a
hourglass). The ONNX counter applies the same rules to Conv/ConvTranspose/MatMul/Gemm and their
integer forms (ConvInteger, QLinearConv, MatMulInteger, QLinearMatMul), so a checkpoint and its export
report the same figure.
"""
from __future__ import annotations

import math
from typing import Any

import onnx
import torch
from onnx import TensorProto
from onnxscript.optimizer import fold_constants
from torch import nn

from compress.errors import HGCError, first_line

CONV_OPS = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}  # op → index of the weight input
MATMUL_OPS = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3)}  # op → (A, B) inputs
INT8_OPS = {"ConvInteger", "QLinearConv", "MatMulInteger", "QLinearMatMul", "QuantizeLinear", "DequantizeLinear"}


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable and frozen; buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_size: int, channels: int = 3) -> int:
    """Multiply-accumulates of one forward pass at batch 1 and ``input_size``×``input_size``."""
    return sum(layer_macs(model, input_size, channels).values())


def layer_macs(model: nn.Module, input_size: int, channels: int = 3) -> dict[str, int]:
    """Multiply-accumulates of each counted layer (``named_modules`` name → MACs) at batch 1.

    The per-layer view of ``count_macs`` (same rules), e.g. for a structured-pruning plan's rows.
    """
    counts: dict[str, int] = {}
    names = {module: name for name, module in model.named_modules()}

    def conv_hook(module: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        if isinstance(module, nn.ConvTranspose2d):
            # every input position scatters a full kernel: in positions × k × cout × cin/groups
            positions = _inp[0].shape[2] * _inp[0].shape[3]
        else:
            positions = out.shape[2] * out.shape[3]
        name = names[module]
        counts[name] = counts.get(name, 0) + positions * module.weight.numel()

    def linear_hook(module: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        name = names[module]
        counts[name] = counts.get(name, 0) + module.weight.numel() * (out.numel() // out.shape[-1])

    hooks = []
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            hooks.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            hooks.append(module.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, channels, input_size, input_size))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return counts


def load_onnx(path: str) -> Any:
    """An ONNX ``ModelProto`` (weights included); a file that is not ONNX is a one-line ``HGCError``."""
    try:
        proto = onnx.load(path)
    except Exception as exc:  # protobuf DecodeError, missing external data, …
        reason = first_line(exc)
        raise HGCError(f"{path}: not an ONNX file ({reason})") from None
    if not proto.graph.node:
        raise HGCError(f"{path}: not an ONNX file (no graph nodes)")
    return proto


def onnx_params(proto: Any) -> int:
    """Parameters of an ONNX graph: elements of the float and 8-bit initializers its nodes consume.

    Counted per use (the exporter merges identical tensors, e.g. fresh BatchNorm weights, into one
    initializer); BatchNormalization running mean/var and quantization scales/zero points are buffers,
    not parameters. INT32 initializers count only as the data input of a ``DequantizeLinear`` (the int32
    biases of an int8 QDQ file), so an int8 artifact has the parameters of the fp32 file it came from.
    The exporter folds a BatchNorm that follows a convolution into that convolution, so
    an export has slightly fewer parameters than ``count_params`` of its checkpoint (same MACs).
    """
    kinds = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE,
             TensorProto.INT8, TensorProto.UINT8}
    sizes = {t.name: math.prod(t.dims) for t in proto.graph.initializer if t.data_type in kinds}
    buffers = {"BatchNormalization": (3, 4), "QuantizeLinear": (1, 2), "DequantizeLinear": (1, 2),
               "QLinearConv": (1, 2, 4, 5, 6, 7), "QLinearMatMul": (1, 2, 4, 5, 6, 7)}
    biases = {t.name: math.prod(t.dims) for t in proto.graph.initializer if t.data_type == TensorProto.INT32}
    total = 0
    for node in proto.graph.node:
        skip = buffers.get(node.op_type, ())
        total += sum(sizes.get(name, 0) for i, name in enumerate(node.input) if i not in skip)
        if node.op_type == "DequantizeLinear" and node.input:
            total += biases.get(node.input[0], 0)
    return total


def _shapes(proto: Any, fold: bool = False) -> dict[str, list[int]]:
    """Static shape of every value at batch 1 (symbolic batch set to 1 before shape inference).

    With ``fold``, constant subgraphs (e.g. the Casts an fp16 conversion puts before Resize scales)
    are folded first so shape inference can see through them; the caller's proto is never modified.
    """
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    del model.graph.value_info[:]  # stale annotations (symbolic batch, pre-conversion types) would stick
    initializers = {t.name for t in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    if fold:
        fold_constants(model)
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes = {t.name: list(t.dims) for t in inferred.graph.initializer}
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = [d.dim_value for d in dims]
    return shapes


def _counted(node: Any) -> bool:
    return node.op_type in CONV_OPS or node.op_type in MATMUL_OPS or node.op_type in ("ConvTranspose", "Gemm")


def onnx_macs(proto: Any) -> int:
    """Multiply-accumulates per image of an ONNX graph (module docstring: what is counted and how)."""
    shapes = _shapes(proto)
    if any(_counted(n) and not all(v in shapes for v in (n.input[0], n.output[0])) for n in proto.graph.node):
        shapes = _shapes(proto, fold=True)
    total = 0
    for node in proto.graph.node:
        out = shapes.get(node.output[0]) if node.output else None
        if node.op_type in CONV_OPS or node.op_type == "ConvTranspose":
            weight = shapes.get(node.input[CONV_OPS.get(node.op_type, 1)])
            source = shapes.get(node.input[0])
            if weight is None or out is None or source is None:
                raise HGCError(f"MACs: cannot infer the shapes around {node.op_type} node {node.name!r}")
            if node.op_type == "ConvTranspose":
                total += math.prod(source[2:]) * source[0] * math.prod(weight)
            else:
                total += math.prod(out) // weight[0] * math.prod(weight)
        elif node.op_type in MATMUL_OPS or node.op_type == "Gemm":
            a_index, _ = MATMUL_OPS.get(node.op_type, (0, 1))
            a = shapes.get(node.input[a_index])
            if a is None or out is None:
                raise HGCError(f"MACs: cannot infer the shapes around {node.op_type} node {node.name!r}")
            k = a[0] if node.op_type == "Gemm" and _attr(node, "transA") else a[-1]
            total += math.prod(out) * k
    batch = next((shapes[v.name][0] for v in proto.graph.input if v.name in shapes and shapes[v.name]), 1)
    return total // max(batch, 1)


def _attr(node: Any, name: str) -> int:
    return next((a.i for a in node.attribute if a.name == name), 0)


def onnx_precision(proto: Any) -> str:
    """``int8`` if the graph computes with quantized operators, ``fp16`` if its weights are half, else ``fp32``."""
    if any(node.op_type in INT8_OPS for node in proto.graph.node):
        return "int8"
    if any(t.data_type == TensorProto.FLOAT16 for t in proto.graph.initializer):
        return "fp16"
    return "fp32"
