"""The channel groups of a stacked hourglass, from torch-pruning's ``DependencyGraph``, and which may shrink.

A group is every tensor dimension that must lose the same channels together: a conv's outputs, the norms
after it, the convs reading it, and — through residual adds, upsampling and ``skip: concat`` — every
layer on the same residual stream. A group is kept whole (``ChannelGroup.blocked`` says why) when it
touches a layer that must keep its shape (the heatmap heads and remaps, ``exclude`` patterns), passes
through an op torch-pruning cannot follow channel by channel (e.g. DiCE's stack/transpose views), or
holds a grouped (not depthwise) convolution.
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from compress.errors import HGCError, first_line
from compress.nets.blocks import pruning_hints

HEAD_PATTERNS = ("stacks.*.score", "merges.*.heatmaps")  # heatmap heads and heatmap → feature remaps
# ops torch-pruning treats as element-wise that really keep every channel where it is
CHANNELWISE_OPS = {"Add", "Sub", "Mul", "Div", "Neg", "Relu", "Sigmoid", "Hardtanh", "LeakyRelu", "Gelu", "Silu",
                   "Clone", "MaxPool2DWithIndices", "AvgPool2D", "AdaptiveAvgPool2D", "Mean", "UpsampleNearest2D",
                   "UpsampleBilinear2D"}
ALLOWED_NODES = {tp.ops.OPTYPE.CONV, tp.ops.OPTYPE.DEPTHWISE_CONV, tp.ops.OPTYPE.BN, tp.ops.OPTYPE.GN,
                 tp.ops.OPTYPE.PARAMETER, tp.ops.OPTYPE.CONCAT, tp.ops.OPTYPE.SLICE}
ROOTS = (nn.Conv2d, nn.ConvTranspose2d)


@dataclass
class ChannelGroup:
    """One set of coupled channels, named after its root convolution."""

    name: str
    width: int
    members: list[tuple[str, str]] = field(default_factory=list)  # (layer, "out" | "in"), named layers only
    blocked: str = ""  # why it keeps every channel ("" when it may shrink)
    kind: str = ""  # the reason's category: head, excluded, untraceable, grouped conv, round_to, unranked
    group: Any = None  # torch-pruning's group over all its channels (importance reads it)

    def keep(self, kind: str, why: str) -> None:
        """Mark the group as kept whole (``kind``: the reason's category, ``why``: the sentence)."""
        self.kind, self.blocked = kind, why

    def out_layers(self) -> list[str]:
        """Layers whose output channels are this group's channels."""
        return [name for name, side in self.members if side == "out"]


def run_checked(model: nn.Module, image: torch.Tensor, what: str) -> torch.Tensor:
    """``model(image)``, or one ``HGCError`` naming the innermost layer whose forward failed."""
    entered: list[str] = []
    names = {module: name for name, module in model.named_modules()}

    def enter(module: nn.Module, _inputs: Any) -> None:
        entered.append(names[module])

    def leave(_module: nn.Module, _inputs: Any, _output: Any) -> None:
        entered.pop()

    hooks = [m.register_forward_pre_hook(enter) for m in model.modules()]
    hooks += [m.register_forward_hook(leave) for m in model.modules()]
    try:
        return model(image)
    except Exception as exc:  # any failure inside a layer is reported with the layer's name
        where = entered[-1] if entered else ""
        kind = type(model.get_submodule(where)).__name__
        raise HGCError(f"{what} fails in {where or 'the network'} ({kind}): {first_line(exc)}") from None
    finally:
        for hook in hooks:
            hook.remove()


def _op_name(node: Any) -> str:
    name = node.grad_fn.name() if node.grad_fn is not None and hasattr(node.grad_fn, "name") else "unknown op"
    return re.sub(r"Backward\d*$", "", name)


def _neighbour(node: Any, names: dict[Any, str], model: nn.Module) -> str:
    """The nearest named layer around an unnamed op node and the block holding it, for messages."""
    seen, frontier = {node}, [node]
    while frontier:
        following = []
        for item in frontier:
            if names.get(item.module):
                name = names[item.module]
                parent = name.rpartition(".")[0]
                block = type(model.get_submodule(parent)).__name__ if parent else type(model).__name__
                return f"{parent or name} ({block})"
            for nxt in (*item.inputs, *item.outputs):
                if nxt not in seen:
                    seen.add(nxt)
                    following.append(nxt)
        frontier = following
    return "an unnamed part of the network"


def _untraceable(group: Any, names: dict[Any, str], model: nn.Module) -> tuple[str, str]:
    """(category, reason) when torch-pruning's view of this group cannot be trusted, else ("", "").

    An op torch-pruning cannot follow is the reason given first; a grouped (not depthwise) convolution next.
    """
    grouped = ""
    for dep, _ in group:
        node = dep.target
        kind = node.type
        if kind == tp.ops.OPTYPE.ELEMENTWISE:
            op = _op_name(node)
            if op not in CHANNELWISE_OPS:
                return "untraceable", (f"its channels pass through {op} in {_neighbour(node, names, model)}, "
                                       "which torch-pruning cannot follow channel by channel")
        elif kind == tp.ops.OPTYPE.OUTPUT:
            return "output", "it is the network's output"
        elif kind not in ALLOWED_NODES:
            return "untraceable", (f"its channels pass through a {kind.name.lower()} op in "
                                   f"{_neighbour(node, names, model)}, which torch-pruning cannot follow channel "
                                   "by channel")
        module = node.module
        if not grouped and isinstance(module, ROOTS) and 1 < module.groups and not (
                module.groups == module.in_channels == module.out_channels):
            grouped = f"it feeds the grouped convolution {names.get(module, '?')} ({module.groups} groups)"
    return ("grouped conv", grouped) if grouped else ("", "")


def check_patterns(model: nn.Module, patterns: list[str], where: str) -> None:
    """Every ``exclude`` pattern names at least one layer (a typo must not silently prune a layer)."""
    layers = [name for name, module in model.named_modules() if name and isinstance(module, ROOTS)]
    for i, pattern in enumerate(patterns):
        if not any(fnmatch.fnmatchcase(name, pattern) for name in layers):
            raise HGCError(f"{where}.exclude[{i}]: {pattern!r} matches no convolution of this network "
                           f"(e.g. {', '.join(layers[:3])})")


class PruneGraph:
    """torch-pruning's dependency graph of ``model`` and its channel groups (built on ``model`` itself).

    ``heads``: ``whole`` keeps every weight of the heatmap heads and remaps (so, in a multi-stack net, the
    residual stream between stacks keeps its width); ``joints`` keeps only their joint channels.
    ``exclude``: fnmatch patterns of layers that keep every weight.
    """

    def __init__(self, model: nn.Module, heads: str = "whole", exclude: list[str] | tuple[str, ...] = (),
                 where: str = "prune") -> None:
        self.model = model
        self.names = {module: name for name, module in model.named_modules()}
        ignored, unwrapped = pruning_hints(model)
        size = model.config.input_size
        image = torch.zeros(1, 3, size, size)
        was_training = model.training
        run_checked(model.eval(), image, f"{where}: the network")
        try:
            with torch.enable_grad():
                self.dg = tp.DependencyGraph().build_dependency(model, example_inputs=image, ignored_layers=ignored,
                                                                unwrapped_parameters=unwrapped or None, verbose=False)
        except Exception as exc:  # torch-pruning's tracer raises many kinds
            raise HGCError(f"{where}: torch-pruning cannot trace this network: {first_line(exc)}") from None
        finally:
            model.train(was_training)
        whole = list(exclude) + (list(HEAD_PATTERNS) if heads == "whole" else [])
        self.groups = [self._describe(g, whole, heads) for g in
                       self.dg.get_all_groups(ignored_layers=[], root_module_types=ROOTS)]

    def _describe(self, group: Any, whole: list[str], heads: str) -> ChannelGroup:
        root = group[0].dep.target.module
        members = []
        for dep, _ in group:
            name = self.names.get(dep.target.module)
            if name:
                members.append((name, "out" if self.dg.is_out_channel_pruning_fn(dep.handler) else "in"))
        found = ChannelGroup(self.names[root], self.dg.get_out_channels(root), members, group=group)
        kind, why = self._blocked(found, whole, heads)
        if not kind:
            kind, why = _untraceable(group, self.names, self.model)
        if kind:
            found.keep(kind, why)
        return found

    @staticmethod
    def _blocked(found: ChannelGroup, whole: list[str], heads: str) -> tuple[str, str]:
        for name, side in found.members:
            for pattern in whole:
                if fnmatch.fnmatchcase(name, pattern):
                    if pattern in HEAD_PATTERNS:
                        return "head", f"tied to {name}, a heatmap head or remap kept whole"
                    return "excluded", f"shares channels with {name} (excluded by {pattern!r})"
            if heads == "joints" and side == "out" and fnmatch.fnmatchcase(name, HEAD_PATTERNS[0]):
                return "head", f"holds the joint channels of {name}"
        return "", ""

    def prunable(self) -> list[ChannelGroup]:
        """Groups that may shrink."""
        return [g for g in self.groups if not g.blocked]

    def prune(self, group: ChannelGroup, idxs: list[int]) -> None:
        """Remove channels ``idxs`` of ``group`` from every layer that holds them."""
        root = self.model.get_submodule(group.name)
        fn = self.dg.get_pruner_of_module(root).prune_out_channels
        pruning = self.dg.get_pruning_group(root, fn, sorted(idxs))
        if not self.dg.check_pruning_group(pruning):
            raise HGCError(f"prune: removing {len(idxs)} of {group.width} channels would empty a layer of {group.name}")
        pruning.prune()
