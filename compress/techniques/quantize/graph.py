"""Graph edits on a QDQ model: which nodes are candidates, which a pattern names, and keeping nodes fp32.

``conv_layers``/``stream_nodes`` list the nodes mixed precision ranks, ``match_nodes`` resolves ``exclude``
patterns, ``keep_float`` makes excluded nodes really run fp32 and ``compact_qdq`` trims the quantizer's
bookkeeping. Every edit leaves the arithmetic of the quantized nodes unchanged.
"""
from __future__ import annotations

import fnmatch
from typing import Any

from onnx import numpy_helper

from compress.errors import HGCError
from compress.measure.kernels import FLOAT_CONV_OPS


def conv_layers(proto: Any) -> list[tuple[str, str]]:
    """(node name, layer name) of every Conv/ConvTranspose of a float graph, in graph order.

    The layer name is the weight initializer's name without ``.weight`` (the PyTorch module path the
    exporter keeps, e.g. ``stacks.0.hourglass.skip.0.conv2``), else the node name.
    """
    inits = {t.name for t in proto.graph.initializer}
    layers = []
    for node in proto.graph.node:
        if node.op_type in ("Conv", "ConvTranspose"):
            weight = node.input[1] if len(node.input) > 1 else ""
            layer = weight[:-len(".weight")] if weight in inits and weight.endswith(".weight") else node.name
            layers.append((node.name, layer))
    return layers


# Non-conv ops the quantizer gives int8 inputs/outputs of their own: the residual Adds, concatenations,
# gates. Each is a mixed-precision candidate, because its Q/DQ pair rounds the stream every later layer reads.
STREAM_OPS = ("Add", "Mul", "Concat", "Sigmoid", "AveragePool", "GlobalAveragePool")


def stream_nodes(proto: Any) -> list[tuple[str, str]]:
    """(node name, label) of every named node of a ``STREAM_OPS`` type, in graph order."""
    return [(node.name, f"{node.name} ({node.op_type})") for node in proto.graph.node
            if node.op_type in STREAM_OPS and node.name]


def match_nodes(patterns: list[str], layers: list[tuple[str, str]], nodes: list[str]) -> dict[str, str]:
    """Node name → the first pattern that names it (fnmatch on conv layer names and on node names).

    A pattern that matches nothing is an error, so a typo never silently quantizes a layer meant to stay fp32.
    """
    hits: dict[str, str] = {}
    for pattern in patterns:
        found = [node for node, layer in layers if fnmatch.fnmatchcase(layer, pattern)]
        found += [node for node in nodes if fnmatch.fnmatchcase(node, pattern)]
        if not found:
            example = layers[0][1] if layers else "?"
            raise HGCError(f"exclude: pattern {pattern!r} matches no node or conv layer (layers look like {example!r})")
        for node in found:
            hits.setdefault(node, pattern)
    return hits


def compact_qdq(proto: Any) -> dict[str, int]:
    """Shrink a QDQ graph's bookkeeping in place; returns what was removed. The arithmetic is unchanged.

    onnxruntime's quantizer spells every tensor out (``stacks.1.hourglass.….conv3.weight_DequantizeLinear_Output``),
    writes all-zero zero points for int8 weights and int32 biases (per channel), and keeps shape
    annotations: on a 1.7 M-parameter hourglass that is ~0.2 MB beside 1.7 MB of int8 weights. Here the
    all-zero weight/bias zero points are dropped (0 is the default), tensors get short names (graph I/O
    and conv weights keep theirs: ``<layer>.weight``), Q/DQ nodes get short names (conv nodes keep theirs,
    which the report maps to layers) and shape annotations go.
    """
    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    dropped = 0
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and len(node.input) == 3 and node.input[0] in inits \
                and node.input[2] in inits and not numpy_helper.to_array(inits[node.input[2]]).any() \
                and inits[node.input[2]].data_type == inits[node.input[0]].data_type:
            del node.input[2]
            dropped += 1
    used = {name for node in graph.node for name in node.input}
    for name in [n for n in inits if n not in used]:
        graph.initializer.remove(inits.pop(name))
    fixed = {v.name for v in [*graph.input, *graph.output]}
    taken = set(fixed) | {n for node in graph.node for n in [*node.input, *node.output]} | set(inits)
    rename: dict[str, str] = {}
    for name in inits:  # quantized conv weights take their float name back
        base = name[:-len("_quantized")] if name.endswith(".weight_quantized") else None
        if base and base not in taken:
            rename[name] = base
    counter = 0
    for name in [n for node in graph.node for n in [*node.input, *node.output]] + list(inits):
        if name and name not in fixed and name not in rename:
            rename[name] = f"t{counter:x}"
            counter += 1
    for node in graph.node:
        node.input[:] = [rename.get(n, n) for n in node.input]
        node.output[:] = [rename.get(n, n) for n in node.output]
    for tensor in graph.initializer:
        tensor.name = rename.get(tensor.name, tensor.name)
    for index, node in enumerate(graph.node):
        if node.op_type not in ("Conv", "ConvTranspose"):
            node.name = f"n{index:x}"
    del graph.value_info[:]
    return {"zero_points_dropped": dropped, "tensors_renamed": len(rename)}


def keep_float(proto: Any, nodes: list[str] | set[str]) -> int:
    """Make the excluded ``nodes`` really run fp32: bypass the Q/DQ pair on each one's output path.

    onnxruntime ≥ 1.21 re-quantizes the float weights of an excluded Conv at load time whenever its input
    comes from DequantizeLinear and its output (through ReLU, Unsqueeze or other single-path ops) reaches a
    QuantizeLinear — its ``WeightBiasQuantization`` transformer — so ``nodes_to_exclude`` alone leaves the
    layer int8. Feeding the consumers the float output instead keeps the layer fp32; those consumers
    then run float too (they are counted as such). An excluded non-conv node (a residual ``Add``, a
    ``Concat``) keeps the stream it produces float for every consumer except the int8 convs, which still
    read it through the pair: the residual stream stays exact and the convs stay int8. So does an excluded
    conv whose input is already float (a BatchNorm conv after a kept Add): with no DequantizeLinear before
    it there is nothing for onnxruntime to re-quantize. Nodes are visited in graph order, so a node sees
    the inputs its excluded producers already made float. Returns how many Q/DQ pairs were bypassed.
    """
    graph = proto.graph
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {v.name for v in graph.output}
    constants = {t.name for t in graph.initializer}
    excluded = set(nodes)

    def unary(node: Any) -> bool:  # one activation in, one out: ReLU, Unsqueeze, MaxPool, Resize, …
        data = [i for i in node.input if i and i not in constants]
        return node.op_type not in ("QuantizeLinear", "DequantizeLinear") and len(data) == 1 \
            and len(node.output) == 1

    producers = {out: node for node in graph.node for out in node.output}

    def float_fed(node: Any) -> bool:  # its data input is not a DequantizeLinear output (any more)
        source = producers.get(node.input[0]) if node.input else None
        return source is None or source.op_type != "DequantizeLinear"

    def reads_int8(user: Any, source: Any) -> bool:  # may keep the dequantized input
        safe = source.op_type not in FLOAT_CONV_OPS or float_fed(source)  # nothing to re-quantize
        return safe and user.op_type in FLOAT_CONV_OPS and user.name not in excluded

    removed, doomed = 0, set()
    for node in [n for n in graph.node if n.name in excluded]:
        tensor = node.output[0]
        while len(consumers.get(tensor, [])) == 1 and unary(consumers[tensor][0]) and tensor not in outputs:
            tensor = consumers[tensor][0].output[0]
        for quant in [c for c in consumers.get(tensor, []) if c.op_type == "QuantizeLinear"]:
            for dequant in [c for c in consumers.get(quant.output[0], []) if c.op_type == "DequantizeLinear"]:
                users = consumers.get(dequant.output[0], [])
                moved = [u for u in users if not reads_int8(u, node)]
                moved_ids = {id(u) for u in moved}
                for user in moved:
                    user.input[:] = [tensor if i == dequant.output[0] else i for i in user.input]
                for value in graph.output:
                    if value.name == dequant.output[0]:
                        value.name = tensor
                removed += bool(moved)
                consumers[dequant.output[0]] = [u for u in users if id(u) not in moved_ids]
                if not consumers[dequant.output[0]]:
                    doomed.add(id(dequant))
            if all(id(c) in doomed for c in consumers.get(quant.output[0], [])):
                doomed.add(id(quant))
    kept = [n for n in graph.node if id(n) not in doomed]
    del graph.node[:]
    graph.node.extend(kept)
    return removed
