"""Quantization-aware training: fine-tune a hourglass under the int8 rounding onnxruntime will apply.

The network is traced with ``torch.fx`` and fake quantization is inserted exactly where onnxruntime's QDQ
quantizer puts Q/DQ pairs, so training sees the deployed arithmetic:

* BatchNorms that directly follow a convolution are folded into it first (the exporter does the same), and
  become identity BatchNorms (frozen), so the weights being fake-quantized are the weights that ship;
* weights: symmetric int8, per output channel (or per tensor), scale = max|w| / 127 — onnxruntime's rule,
  so its quantizer later reproduces the very integers the network was trained with (``reduce_range``: its
  7-bit rule, max|w| / 64, integers in [-64, 64]);
* activations: asymmetric uint8 (or int8) on every tensor consumed by a Conv, residual Add, MaxPool,
  Resize, pre-activation BatchNorm or the output stack — a ReLU feeding a conv is quantized *after* the
  ReLU, as onnxruntime removes the ReLU into the quantizer's zero point. Ranges start from min/max over
  real calibration crops and follow an exponential moving average (0.01) while training.

Gradients pass the rounding straight through (``torch.fake_quantize_*``: straight-through estimator,
zero outside the clamp range). BatchNorms are kept in eval mode. Training is the one loop
(``compress.train.train``), optionally FPD-distilled from the fp32 teacher; the parameter names are the
network's own, so its periodic checkpoints are ordinary hgc checkpoints and ``resume`` works (the range
observers restart from the calibration crops). The returned network is plain fp32 with the trained weights;
the int8 file is then written by the same onnxruntime quantizer as post-training quantization.
"""
from __future__ import annotations

import copy
import operator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from compress.data.crops import crops
from compress.errors import HGCError, first_line
from compress.steps import DistillParams
from compress.techniques.quantize.config import QATParams, QuantizeParams
from compress.train import TrainConfig, train

QRANGES = {"uint8": (0, 255), "int8": (-128, 127)}
WEIGHT_QMAX, REDUCED_WEIGHT_QMAX = 127, 64  # onnxruntime's symmetric int8 weights: full and reduce_range
EMA = 0.01


class ActivationFakeQuant(nn.Module):
    """Per-tensor asymmetric fake quantization with a min/max observer (exact, then moving average).

    ``mode``: ``calibrate`` records the exact min/max and passes values through; ``train`` follows the
    range with an EMA while training and fake-quantizes. Its state is not saved (non-persistent buffers).
    """

    def __init__(self, dtype: str = "uint8") -> None:
        super().__init__()
        self.qmin, self.qmax = QRANGES[dtype]
        self.mode = "calibrate"
        self.register_buffer("low", torch.tensor(float("inf")), persistent=False)
        self.register_buffer("high", torch.tensor(float("-inf")), persistent=False)

    def qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, zero point) of the current range, widened to contain 0 as onnxruntime does."""
        low, high = torch.clamp(self.low, max=0.0), torch.clamp(self.high, min=0.0)
        scale = torch.clamp((high - low) / (self.qmax - self.qmin), min=1e-8)
        zero = torch.clamp(torch.round(self.qmin - low / scale), self.qmin, self.qmax).to(torch.int32)
        return scale.reshape(1), zero.reshape(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "calibrate" or self.training:
            with torch.no_grad():
                low, high = x.detach().min(), x.detach().max()
                if self.mode == "calibrate" or not torch.isfinite(self.low):
                    self.low.copy_(torch.minimum(self.low, low))
                    self.high.copy_(torch.maximum(self.high, high))
                else:
                    self.low.lerp_(low, EMA)
                    self.high.lerp_(high, EMA)
        if self.mode == "calibrate":
            return x
        scale, zero = self.qparams()
        return torch.fake_quantize_per_tensor_affine(x, scale, zero, self.qmin, self.qmax)


def fake_quant_weight(weight: torch.Tensor, per_channel: bool, axis: int = 0, qmax: int = WEIGHT_QMAX) -> torch.Tensor:
    """Symmetric fake quantization of a weight to integers in [-qmax, qmax], scale = max|w| / qmax (per ``axis``
    channel or tensor); qmax 127 is onnxruntime's int8 rule, 64 its ``reduce_range`` one."""
    if per_channel:
        dims = [d for d in range(weight.dim()) if d != axis]
        scale = torch.clamp(weight.detach().abs().amax(dim=dims) / qmax, min=1e-12)
        zero = torch.zeros_like(scale, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(weight, scale, zero, axis, -qmax, qmax)
    scale = torch.clamp(weight.detach().abs().max() / qmax, min=1e-12).reshape(1)
    return torch.fake_quantize_per_tensor_affine(weight, scale, torch.zeros(1, dtype=torch.int32), -qmax, qmax)


class QuantConv(nn.Module):
    """Runs a Conv2d / ConvTranspose2d with fake-quantized weights; holds no parameters of its own.

    In ``calibrate`` mode the weights stay float, as onnxruntime calibrates on the float graph.
    """

    def __init__(self, per_channel: bool, qmax: int = WEIGHT_QMAX) -> None:
        super().__init__()
        self.per_channel, self.qmax = per_channel, qmax
        self.mode = "calibrate"

    def forward(self, x: torch.Tensor, conv: nn.Module) -> torch.Tensor:
        if self.mode == "calibrate":
            return conv(x)
        if isinstance(conv, nn.ConvTranspose2d):
            w = fake_quant_weight(conv.weight, self.per_channel, axis=1, qmax=self.qmax)
            return F.conv_transpose2d(x, w, conv.bias, conv.stride, conv.padding, conv.output_padding,
                                      conv.groups, conv.dilation)
        w = fake_quant_weight(conv.weight, self.per_channel, axis=0, qmax=self.qmax)
        return F.conv2d(x, w, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def fold_batchnorms(model: nn.Module, graph: fx.Graph) -> list[str]:
    """Fold each BatchNorm2d that is a conv's only consumer into that conv; the BN becomes identity.

    Identity BN: weight 1, bias 0, mean 0, var 1 − eps (frozen), so the state dict keeps its layout and the
    exporter folds it away unchanged. Returns the qualified names of the folded BatchNorms.
    """
    modules = dict(model.named_modules())
    folded = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.Conv2d):
            continue
        users = list(node.users)
        if len(users) != 1 or users[0].op != "call_module" \
                or not isinstance(modules.get(users[0].target), nn.BatchNorm2d):
            continue
        conv, bn = modules[node.target], modules[users[0].target]
        if not bn.track_running_stats or bn.running_var is None:
            continue
        with torch.no_grad():
            factor = (bn.weight if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(bn.running_var + bn.eps)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            conv.weight.mul_(factor.reshape(-1, 1, 1, 1))
            new_bias = (bias - bn.running_mean) * factor + (bn.bias if bn.affine else 0.0)
            if conv.bias is None:
                conv.bias = nn.Parameter(new_bias.clone())
            else:
                conv.bias.copy_(new_bias)
            if bn.affine:
                bn.weight.fill_(1.0)
                bn.bias.zero_()
                bn.weight.requires_grad_(False)
                bn.bias.requires_grad_(False)
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
        folded.append(users[0].target)
    return folded


def _consumes_quantized(node: fx.Node, modules: dict[str, nn.Module], folded: set[str]) -> list[fx.Node]:
    """The activation inputs onnxruntime's QDQ quantizer would quantize for ``node`` (module docstring)."""
    if node.op == "call_module":
        module = modules.get(node.target)
        quantized = (nn.Conv2d, nn.ConvTranspose2d, nn.MaxPool2d, nn.Upsample, nn.BatchNorm2d)
        if isinstance(module, quantized) and node.target not in folded:
            return [a for a in node.args[:1] if isinstance(a, fx.Node)]
        return []
    if node.op == "call_function":
        if node.target in (operator.add, torch.add):
            return [a for a in node.args[:2] if isinstance(a, fx.Node)]
        if node.target in (F.max_pool2d, F.interpolate):
            return [a for a in node.args[:1] if isinstance(a, fx.Node)]
        if node.target in (torch.cat, torch.stack):
            return [a for a in node.args[0] if isinstance(a, fx.Node)]
    return []


@dataclass
class QATModel:
    """A traced network with fake quantization inserted, plus what was done to it."""

    module: fx.GraphModule
    folded: list[str] = field(default_factory=list)
    activations: int = 0
    convs: int = 0

    def set_mode(self, mode: str) -> None:
        """``calibrate`` (observe exact ranges, no rounding) or ``train`` (fake-quantize, EMA ranges)."""
        for module in self.module.modules():
            if isinstance(module, (ActivationFakeQuant, QuantConv)):
                module.mode = mode


def prepare_qat(model: nn.Module, config: QuantizeParams | None = None) -> QATModel:
    """Fold BatchNorms into ``model`` (in place) and return a traced copy with fake quantization inserted.

    The traced module shares ``model``'s parameters, so training it trains ``model``.
    """
    config = config or QuantizeParams()
    per_channel, activation_type = config.per_channel, config.activation_type
    try:
        graph = fx.Tracer().trace(model)
    except Exception as exc:  # tracing fails on data-dependent control flow
        raise HGCError(f"qat: cannot trace the network with torch.fx: {first_line(exc)}") from None
    folded = set(fold_batchnorms(model, graph))
    modules = dict(model.named_modules())
    wanted: dict[fx.Node, list[fx.Node]] = {}
    for node in graph.nodes:
        for source in _consumes_quantized(node, modules, folded):
            wanted.setdefault(source, []).append(node)
    added: dict[str, nn.Module] = {}
    for index, (source, consumers) in enumerate(wanted.items()):
        name = f"hgc_fq_{index}"
        added[name] = ActivationFakeQuant(activation_type)
        with graph.inserting_after(source):
            quantized = graph.call_module(name, (source,))
        for consumer in consumers:
            consumer.replace_input_with(source, quantized)
    added["hgc_qconv"] = QuantConv(per_channel, REDUCED_WEIGHT_QMAX if config.reduce_range else WEIGHT_QMAX)
    convs = 0
    for node in list(graph.nodes):
        if node.op == "call_module" and isinstance(modules.get(node.target), (nn.Conv2d, nn.ConvTranspose2d)):
            with graph.inserting_before(node):
                conv = graph.get_attr(node.target)
                replacement = graph.call_module("hgc_qconv", (node.args[0], conv))
            node.replace_all_uses_with(replacement)
            graph.erase_node(node)
            convs += 1
    graph.lint()
    for name, module in added.items():  # attached only while the GraphModule copies its attributes
        model.add_module(name, module)
    try:
        traced = fx.GraphModule(model, graph)
    finally:
        for name in added:
            delattr(model, name)
    traced.config = model.config  # what the training loop and checkpoints read
    if set(traced.state_dict()) != set(model.state_dict()):
        raise HGCError("qat: the traced network does not keep every parameter of the model (unused layers?)")
    return QATModel(module=traced, folded=sorted(folded), activations=len(wanted), convs=convs)


def _eval_norms(module: nn.Module, _inputs: Any) -> None:
    for child in module.modules():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            child.eval()


@dataclass
class QATResult:
    """The fine-tuned fp32 network and what QAT did (history of the training loop included)."""

    model: nn.Module
    folded: list[str]
    activations: int
    convs: int
    history: list[dict[str, Any]]


def qat_finetune(model: nn.Module, data: str, out: str, config: QuantizeParams, *,
                 teacher: nn.Module | None = None, device: str = "cpu", resume: bool = False,
                 meta: dict[str, Any] | None = None, lineage: list[dict[str, Any]] | None = None,
                 progress: bool = False) -> QATResult:
    """Fine-tune a copy of ``model`` under int8 fake quantization (module docstring) as ``config.qat`` says.

    Weight granularity and activation type come from ``config`` (as the int8 export will use them); ranges
    start from ``qat.calibration_images`` eval crops of ``data``; a ``teacher`` turns the loss into FPD
    distillation with ``qat.distill.alpha``; ``out`` is the training checkpoint, written every
    ``qat.checkpoint_every`` steps (0: at the end only) so ``resume`` continues a killed run from its last one.
    """
    qat = config.qat if config.qat is not None else QATParams()
    alpha = qat.distill.alpha if qat.distill is not None else DistillParams().alpha
    net = copy.deepcopy(model).cpu().float().eval()
    prepared = prepare_qat(net, config)
    module = prepared.module
    images = torch.from_numpy(crops(data, net.config.input_size, qat.calibration_images, 0,
                                    purpose="calibration").images)
    module.eval()
    prepared.set_mode("calibrate")
    with torch.no_grad():
        for start in range(0, len(images), 16):
            module(images[start:start + 16])
    prepared.set_mode("train")
    hook = module.register_forward_pre_hook(_eval_norms)
    cfg = TrainConfig(steps=qat.steps, batch_size=qat.batch_size, lr=qat.lr, lr_milestones=[], seed=qat.seed,
                      distill_alpha=alpha, checkpoint_every=qat.checkpoint_every, device=device)
    try:
        result = train(module, data, cfg, out, resume=resume, teacher=teacher, meta=meta, lineage=lineage,
                       progress=progress)
    finally:
        hook.remove()
    net.cpu().eval()
    return QATResult(model=net, folded=prepared.folded, activations=prepared.activations,
                     convs=prepared.convs, history=result.history)
