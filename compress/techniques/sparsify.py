"""The ``sparsify`` recipe op: unstructured magnitude pruning on an AGP cubic schedule over fine-tuning.

The smallest-magnitude convolution weights are set to exactly zero — over all layers at once
(``scope: global``) or the same share of each layer (``local``) — at ``updates`` points between
``begin`` and ``end`` of the fine-tuning, the share growing as AGP's cubic
``s_i = sparsity · (1 − (1 − i/updates)³)`` (Zhu & Gupta, 2017). The masks are re-applied after every
optimizer step (``compress.train``'s ``on_step``), so pruned weights stay zero through training, in every
saved checkpoint and in the result. The heatmap heads and remaps and ``exclude`` patterns stay dense.
The network keeps its shape (no dense-runtime speed-up); the zeros pay off in a packed format.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from compress.errors import HGCError
from compress.nets import checkpoint
from compress.steps import DistillParams, Params, StepContext, StepResult, bounded, choice, items, register_step
from compress.train import TrainConfig, train

DENSE = ("stacks.*.score", "merges.*.heatmaps")  # heatmap heads and heatmap → feature remaps
LAYERS = (nn.Conv2d, nn.ConvTranspose2d)


@dataclass
class SparsifyParams(Params):
    """Target sparsity, ranking scope, the AGP schedule and the fine-tuning it runs over."""

    sparsity: float = bounded(0.8, 0.0, 1.0, doc="share of the pruned layers' weights set to zero, in (0, 1)")
    scope: str = choice("global", ("global", "local"), "one magnitude threshold for all layers, or per layer")
    begin: float = bounded(0.0, 0.0, 1.0, doc="fraction of the steps where pruning starts")
    end: float = bounded(0.75, 0.0, 1.0, doc="fraction of the steps where the target sparsity is reached")
    updates: int = bounded(10, 1, doc="mask updates from begin to end (AGP cubic schedule)")
    exclude: list[str] = items(list, "layer name patterns (fnmatch) kept dense, besides the heads")
    steps: int = bounded(1000, 1, doc="fine-tuning optimizer steps", scale="steps")
    batch_size: int = bounded(16, 1, doc="images per step")
    lr: float = bounded(1e-4, 0.0, doc="learning rate (Adam)")
    lr_milestones: list[float] = items(lambda: [0.9], "fractions of the run where lr drops", low=0.0, high=1.0)
    lr_gamma: float = bounded(0.1, 0.0, 1.0, doc="lr factor at each milestone")
    seed: int = bounded(0, 0, doc="sample stream seed")
    checkpoint_every: int = bounded(100, 0, doc="resumable checkpoint every N steps (0: at the end only)")
    distill: DistillParams | None = items(DistillParams, "FPD distillation from the dense teacher (null: off)")

    def check(self) -> None:
        if not 0.0 < self.sparsity < 1.0:
            raise HGCError(f"sparsity: {self.sparsity!r} must lie in (0, 1)")
        if self.end < self.begin:
            raise HGCError(f"end: {self.end!r} comes before begin {self.begin!r}")
        self.train_config("cpu")

    def train_config(self, device: str) -> TrainConfig:
        """The fine-tuning run's ``TrainConfig``."""
        return TrainConfig(steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                           lr_milestones=list(self.lr_milestones), lr_gamma=self.lr_gamma, seed=self.seed,
                           checkpoint_every=self.checkpoint_every,
                           distill_alpha=self.distill.alpha if self.distill else 0.5, device=device)

    def schedule(self) -> dict[int, float]:
        """Optimizer step (0: before training) → sparsity the masks take there (AGP cubic, the last = target)."""
        points: dict[int, float] = {}
        for i in range(1, self.updates + 1):
            at = round(self.steps * (self.begin + (self.end - self.begin) * i / self.updates))
            points[at] = self.sparsity * (1.0 - (1.0 - i / self.updates) ** 3)
        return points


def sparse_layers(model: nn.Module, exclude: list[str] | tuple[str, ...] = (), where: str = "sparsify") -> list[str]:
    """Names of the convolutions whose weights are pruned: all but the heads, remaps and ``exclude`` matches."""
    names = [n for n, m in model.named_modules() if isinstance(m, LAYERS)]
    for i, pattern in enumerate(exclude):
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            raise HGCError(f"{where}.exclude[{i}]: {pattern!r} matches no convolution of this network")
    kept = [n for n in names if not any(fnmatch.fnmatchcase(n, p) for p in (*DENSE, *exclude))]
    if not kept:
        raise HGCError(f"{where}.exclude: every convolution is excluded; nothing to sparsify")
    return kept


def magnitude_masks(model: nn.Module, layers: list[str], sparsity: float, scope: str) -> dict[str, torch.Tensor]:
    """Boolean keep-masks zeroing exactly round(sparsity · n) smallest |w| (of all layers, or of each)."""
    weights = {n: model.get_submodule(n).weight.detach() for n in layers}
    masks = {}
    if scope == "local":
        for name, w in weights.items():
            masks[name] = _keep(w.abs().flatten(), round(sparsity * w.numel())).view_as(w)
        return masks
    flat = torch.cat([w.abs().flatten() for w in weights.values()])
    keep = _keep(flat, round(sparsity * flat.numel()))
    start = 0
    for name, w in weights.items():
        masks[name] = keep[start:start + w.numel()].view_as(w)
        start += w.numel()
    return masks


def _keep(values: torch.Tensor, drop: int) -> torch.Tensor:
    mask = torch.ones_like(values, dtype=torch.bool)
    if drop > 0:
        mask[torch.topk(values, drop, largest=False, sorted=False).indices] = False
    return mask


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Set every masked-out weight to exactly zero."""
    with torch.no_grad():
        for name, mask in masks.items():
            weight = model.get_submodule(name).weight
            weight.masked_fill_(~mask.to(weight.device), 0.0)


def layer_sparsity(model: nn.Module, names: list[str]) -> dict[str, float]:
    """Share of exact zeros in each named layer's weight."""
    return {n: round(float((model.get_submodule(n).weight == 0).float().mean()), 6) for n in names}


@register_step("sparsify", SparsifyParams)
def sparsify(model: Any, params: SparsifyParams, ctx: StepContext) -> StepResult:
    """Zero the smallest weights on an AGP cubic schedule while fine-tuning (masks held), heads kept dense."""
    layers = sparse_layers(model, params.exclude)
    points = params.schedule()
    work = ctx.scratch("train.pt")
    ctx.scratch("train.pt.state")
    resume = ctx.resume and work.is_file() and work.with_name("train.pt.state").is_file()
    masks: dict[str, torch.Tensor] = {}
    if resume:  # the saved weights carry the masks of the last update (pruned weights are exact zeros)
        state = checkpoint.read_payload(work)["state_dict"]
        masks = {n: state[f"{n}.weight"] != 0 for n in layers}

    def on_step(done: int) -> None:
        if done in points:
            masks.update(magnitude_masks(model, layers, points[done], params.scope))
            ctx.log({"event": "sparsity", "step": done, "target": round(points[done], 6)})
        apply_masks(model, masks)

    if 0 in points and not resume:
        on_step(0)
    teacher = ctx.teacher() if params.distill else None
    result = train(model, ctx.data, params.train_config(ctx.device), str(work), resume=resume, teacher=teacher,
                   meta=ctx.meta, lineage=ctx.lineage, progress=ctx.progress, on_step=on_step)
    for record in result.history:
        ctx.log(record)
    masks = magnitude_masks(model, layers, params.sparsity, params.scope) if not masks else masks
    apply_masks(model, masks)
    per_layer = layer_sparsity(model, layers)
    weights = sum(model.get_submodule(n).weight.numel() for n in layers)
    zeros = sum(int((model.get_submodule(n).weight == 0).sum()) for n in layers)
    total = sum(p.numel() for p in model.parameters())
    last = result.history[-1] if result.history else {}
    return StepResult(model, metrics={
        "sparsity_target": params.sparsity, "scope": params.scope, "sparsity": round(zeros / weights, 6),
        "zero_weights": zeros, "pruned_layer_weights": weights, "model_sparsity": round(zeros / total, 6),
        "dense_layers": [n for n, m in model.named_modules() if isinstance(m, LAYERS) and n not in layers],
        "layer_sparsity": per_layer, "updates": {str(k): round(v, 6) for k, v in sorted(points.items())},
        "steps": params.steps, "final_loss": last.get("loss"), "resumed": resume,
        "max_layer_sparsity": max(per_layer.values()), "min_layer_sparsity": min(per_layer.values()),
        "note": "same shapes: dense runtimes gain no speed from these zeros; a packed format stores them compactly"})
