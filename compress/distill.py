"""What distillation needs besides the training loop: the student/teacher pair check and feature adapters.

The FPD heatmap loss itself is ``compress.train.distill_loss`` (every student stack against the teacher's
last stack, so the two nets may have any number of stacks). Feature distillation adds, at named layers,
``weight · MSE(adapter(student_layer), teacher_layer) / mean(teacher_layer²)`` with a 1×1 convolution as
the adapter (the two layers may differ in channels, not in spatial size). Dividing by the teacher layer's
mean square makes the term scale-free (1 = as far off as predicting zeros), so one weight means the same
at any layer; the FPD heatmap loss is of order 1e-3, hence the small default weight. The adapters
train with the student and are thrown away afterwards, so the saved student is a plain
``StackedHourglass``. Layer outputs are caught with forward hooks, so neither network is modified.
Shared by the ``distill`` and ``swap`` ops.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from compress.errors import HGCError
from compress.nets.config import HourglassConfig


def check_pair(student: HourglassConfig, teacher: HourglassConfig, where: str) -> None:
    """Refuse a student whose heatmaps cannot be compared with the teacher's (joints, heatmap size).

    Any other difference (stacks, widths, blocks, depth, norm…) is fine: FPD compares heatmaps only.
    """
    ours = (student.joints, student.heatmap_size)
    theirs = (teacher.joints, teacher.heatmap_size)
    if ours != theirs:
        raise HGCError(f"{where}: the student predicts {ours[0]} joints at {ours[1]}×{ours[1]}, the teacher "
                       f"{theirs[0]} at {theirs[1]}×{theirs[1]}; distillation needs the same joints and heatmap "
                       "size (input_size)")


@dataclass
class FeatureLayer:
    """One feature-distillation pair: student layer, teacher layer (``named_modules`` paths), loss weight.

    ``where`` names the pair in the recipe (``steps[0].distill.feature_layers[1]``) for error messages.
    """

    student: str
    teacher: str
    weight: float
    where: str = "feature_layers"


def layer_shapes(model: nn.Module, names: list[str], input_size: int) -> dict[str, tuple[int, ...]]:
    """Output shape (C, H, W) of each named layer on one input_size² image (its kind checked too).

    A name that is no layer of ``model``, or a layer whose output is not an N×C×H×W tensor, raises
    ``KeyError``/``TypeError`` with the name; callers turn them into recipe errors.
    """
    modules = dict(model.named_modules())
    shapes: dict[str, Any] = {}
    hooks = []

    def keep(name: str) -> Any:  # a forward hook must return None, or it replaces the module's output
        def hook(_module: nn.Module, _inputs: Any, out: Any) -> None:
            shapes.setdefault(name, out)
        return hook

    for name in names:
        if not name or name not in modules:
            raise KeyError(name)
        hooks.append(modules[name].register_forward_hook(keep(name)))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, input_size, input_size, device=_device(model)))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    result = {}
    for name in names:
        out = shapes.get(name)
        if not isinstance(out, torch.Tensor) or out.dim() != 4:
            raise TypeError(name)
        result[name] = tuple(out.shape[1:])
    return result


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


class FeatureDistill(nn.Module):
    """1×1 adapters from student to teacher layers plus the hooks that catch both layers' outputs.

    ``attach(student, teacher)`` registers the hooks; then every student forward (with gradients) and
    teacher forward (under ``no_grad``) leaves its layer outputs here, and calling the module as
    ``aux(heatmaps, batch)`` — the ``aux`` hook of ``compress.train.train`` — returns
    ``Σ weight · MSE(adapter(student), teacher) / mean(teacher²)``. ``detach()`` removes the hooks.
    """

    def __init__(self, layers: list[FeatureLayer], student: nn.Module, teacher: nn.Module,
                 input_size: int) -> None:
        super().__init__()
        self.layers = list(layers)
        s_shapes = _probe(student, [f.student for f in layers], input_size, layers, "student")
        t_shapes = _probe(teacher, [f.teacher for f in layers], input_size, layers, "teacher")
        adapters = []
        for layer in layers:
            (sc, sh, sw), (tc, th, tw) = s_shapes[layer.student], t_shapes[layer.teacher]
            if (sh, sw) != (th, tw):
                raise HGCError(f"{layer.where}: student layer {layer.student!r} gives {sh}×{sw} maps, teacher "
                               f"layer {layer.teacher!r} {th}×{tw}; a 1×1 adapter needs the same spatial size")
            adapters.append(nn.Conv2d(sc, tc, 1))
        self.adapters = nn.ModuleList(adapters)
        self._student: dict[int, torch.Tensor] = {}
        self._teacher: dict[int, torch.Tensor] = {}
        self._hooks: list[Any] = []

    def attach(self, student: nn.Module, teacher: nn.Module) -> FeatureDistill:
        """Start catching the named layers' outputs of ``student`` and ``teacher``."""
        self.detach()
        s_modules, t_modules = dict(student.named_modules()), dict(teacher.named_modules())
        for i, layer in enumerate(self.layers):
            self._hooks.append(s_modules[layer.student].register_forward_hook(self._keep(self._student, i)))
            self._hooks.append(t_modules[layer.teacher].register_forward_hook(self._keep(self._teacher, i)))
        return self

    def detach(self) -> None:
        """Remove the hooks and drop the caught outputs."""
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        self._student.clear()
        self._teacher.clear()

    @staticmethod
    def _keep(store: dict[int, torch.Tensor], index: int) -> Any:
        def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            store[index] = output
        return hook

    def forward(self, heatmaps: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """Weighted relative adapter MSE over all pairs, from the last student and teacher forwards."""
        if len(self._student) != len(self.layers) or len(self._teacher) != len(self.layers):
            raise RuntimeError("FeatureDistill: attach() it and run both networks before asking for the loss")
        total = heatmaps.new_zeros(())
        for i, (layer, adapter) in enumerate(zip(self.layers, self.adapters)):
            target = self._teacher[i].detach()
            scale = target.pow(2).mean().clamp_min(1e-12)
            total = total + layer.weight * F.mse_loss(adapter(self._student[i]), target) / scale
        return total


def _probe(model: nn.Module, names: list[str], input_size: int, layers: list[FeatureLayer],
           side: str) -> dict[str, tuple[int, ...]]:
    """``layer_shapes`` with its errors turned into one line naming the recipe path of the bad layer."""
    try:
        return layer_shapes(model, names, input_size)
    except (KeyError, TypeError) as exc:
        name = exc.args[0]
        layer = next(f for f in layers if getattr(f, side) == name)
        if isinstance(exc, KeyError):
            close = difflib.get_close_matches(str(name), [n for n, _ in model.named_modules() if n], n=3)
            hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
            raise HGCError(f"{layer.where}.{side}: no layer {name!r} in the {side}{hint}") from None
        raise HGCError(f"{layer.where}.{side}: layer {name!r} of the {side} does not output an N×C×H×W "
                       "feature map") from None
