"""Channel importance for structured pruning: weight magnitude, BatchNorm scale or first-order Taylor.

Scores come from torch-pruning's importance classes over a whole channel group (every layer holding the
channel), normalised by the group's mean so ``scope: global`` can rank channels of different layers
together. ``taylor`` needs loss gradients on training crops (``taylor_gradients``); ``bn_scale`` can be
helped by network slimming's L1 penalty on the scales (``slimming_loss``, added to the training loss).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch_pruning as tp
from torch import nn

from compress.data.dataset import PoseDataset, open_source, train_spec
from compress.techniques.prune.graph import ChannelGroup, PruneGraph
from compress.train import heatmap_loss

NORMS = (nn.BatchNorm2d,)


def scorer(kind: str, p: int) -> tuple[tp.importance.Importance, tp.importance.Importance]:
    """(main importance, fallback for groups it cannot score) for ``kind``.

    ``bn_scale`` scores only groups holding a BatchNorm; groups without one (e.g. a squeeze conv)
    fall back to the L``p`` magnitude of their weights.
    """
    magnitude = tp.importance.MagnitudeImportance(p=p)
    if kind == "bn_scale":
        return tp.importance.BNScaleImportance(), magnitude
    if kind == "taylor":
        return tp.importance.TaylorImportance(), magnitude
    return magnitude, magnitude


def group_scores(graph: PruneGraph, kind: str, p: int) -> dict[str, torch.Tensor]:
    """Root layer name → one score per channel, for every group that may shrink."""
    main, fallback = scorer(kind, p)
    scores = {}
    for group in graph.prunable():
        score = main(group.group)
        if score is None:
            score = fallback(group.group)
        if score is None:  # a group of parameter-free ops only: nothing to rank by, keep it
            group.keep("unranked", "no weights to rank its channels by")
            continue
        scores[group.name] = torch.nan_to_num(score.detach().float().cpu(), nan=0.0)
    return scores


def taylor_gradients(model: nn.Module, data: str, images: int, batch_size: int, seed: int, sigma: float = 1.0) -> None:
    """Accumulate heatmap-loss gradients of ``images`` training crops in ``model``'s ``.grad`` (eval-mode norms)."""
    config = model.config
    source = open_source(train_spec(data), size=config.input_size, seed=seed)
    dataset = PoseDataset(source, config.input_size, config.heatmap_size, sigma, train=True, seed=seed)
    was_training = model.training
    model.eval().zero_grad(set_to_none=True)
    with torch.enable_grad():
        for start in range(0, images, batch_size):
            batch = [dataset[i] for i in range(start, min(images, start + batch_size))]
            image = torch.stack([b["image"] for b in batch])
            target = torch.stack([b["target"] for b in batch])
            weight = torch.stack([b["weight"] for b in batch])
            heatmaps = model(image)
            if not config.intermediate:
                heatmaps = heatmaps[:, -1:]
            heatmap_loss(heatmaps, target, weight).backward()
    model.train(was_training)


def slimming_norms(graph: PruneGraph) -> list[str]:
    """Names of the BatchNorms in groups that may shrink: the scales network slimming pushes to zero."""
    names = []
    for group in graph.prunable():
        names += [name for name, _ in group.members if isinstance(graph.model.get_submodule(name), NORMS)]
    return sorted(set(names))


def slimming_loss(model: nn.Module, norms: list[str], l1: float) -> Callable[..., torch.Tensor]:
    """``extra_loss`` for ``compress.train.train``: ``l1`` · Σ |gamma| over the named BatchNorms."""
    layers = [model.get_submodule(name) for name in norms]

    def penalty(_heatmaps: torch.Tensor, _batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return l1 * sum(layer.weight.abs().sum() for layer in layers)

    return penalty


def copy_grads(source: nn.Module, target: nn.Module) -> None:
    """Give ``target`` (a deep copy of ``source``) the gradients ``source`` holds."""
    for a, b in zip(source.parameters(), target.parameters()):
        b.grad = None if a.grad is None else a.grad.detach().clone()


def describe(groups: list[ChannelGroup]) -> dict[str, int]:
    """How many groups are kept whole, by the category of the reason (for plans, metrics and logs)."""
    counts: dict[str, int] = {}
    for group in groups:
        if group.blocked:
            counts[group.kind] = counts.get(group.kind, 0) + 1
    return counts
