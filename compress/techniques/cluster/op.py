"""The ``cluster`` recipe op: k-means weight sharing per conv layer, then tied fine-tuning.

Each chosen conv's weights (or each output channel's) are replaced by the nearest of k shared centroids
(``kmeans``); during fine-tuning (``compress.tuning``, FPD-distilled from the teacher by default) the
layers compute ``weight = codebook[index]`` (``tied``), so each centroid's gradient is the sum of its
members' gradients and the weights stay tied. The model returned is a plain ``StackedHourglass`` whose
conv layers hold at most k distinct values each, which ``hgc pack`` stores as codebook + indices.
Exact zeros (a sparsified model) stay zero: 0 is a fixed centroid of its own.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from compress.errors import HGCError
from compress.nets.shared import unshare_weight
from compress.steps import StepContext, StepResult, register_step
from compress.techniques.cluster.config import ClusterParams
from compress.techniques.cluster.kmeans import CKMEANS_MAX_K
from compress.techniques.cluster.tied import cluster_weight, tie
from compress.tuning import tune

CONVS = (nn.Conv2d, nn.ConvTranspose2d)


@dataclass
class LayerPlan:
    """One conv to cluster: its name, module and k."""

    name: str
    module: nn.Module
    k: int


def check_float_model(model: Any, lineage: list[dict[str, Any]], op: str) -> None:
    """Refuse a model that is already int8 (integer weights, or an int8 quantize step in its lineage)."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() is False and name.endswith("weight"):
            raise HGCError(f"{op}: tensor {name!r} is {tensor.dtype}; the model is already quantized")
    for step in (s for s in lineage if isinstance(s, dict)):
        params = step.get("params") or {}
        if step.get("op") == "quantize" and params.get("precision") == "int8":
            raise HGCError(f"{op}: the model was quantized to int8 (lineage step 'quantize'); "
                           "cluster the float model before quantizing")


def plan_layers(model: nn.Module, params: ClusterParams) -> list[LayerPlan]:
    """The convs to cluster with their k; every bad k is refused here, before any work."""
    plans, used = [], set()
    for name, module in model.named_modules():
        if not isinstance(module, CONVS) or any(fnmatch.fnmatchcase(name, p) for p in params.exclude):
            continue
        pattern = next((p for p in params.layer_k if fnmatch.fnmatchcase(name, p)), None)
        k = params.layer_k[pattern] if pattern is not None else params.k
        used.add(pattern)
        weight = module.weight
        count = weight[0].numel() if params.per_channel else weight.numel()
        if k > count:
            where = "per output channel" if params.per_channel else "in all"
            raise HGCError(f"cluster.k: layer {name!r} has {count} weights {where}, fewer than k={k}")
        if params.init == "optimal" and k > CKMEANS_MAX_K and not bool((weight == 0).any()):
            raise HGCError(f"cluster.k: init 'optimal' solves up to {CKMEANS_MAX_K} free centroids; layer {name!r} "
                           f"has no zeros, so k={k} needs {k}: use k ≤ {CKMEANS_MAX_K} or another init")
        plans.append(LayerPlan(name, module, k))
    unused = [p for p in params.layer_k if p not in used]
    if unused:
        raise HGCError(f"cluster.layer_k: pattern {unused[0]!r} matches no clustered conv layer")
    if not plans:
        raise HGCError("cluster: no conv layer left to cluster (check exclude)")
    return plans


def keep_zeros(model: nn.Module, clustered: set[int]) -> list[Any]:
    """Gradient masks that keep the exact zeros of the unclustered convs at zero while fine-tuning.

    A zero gradient leaves Adam's moments at zero, so those weights do not move (no weight decay here).
    """
    hooks = []
    for module in model.modules():
        if isinstance(module, CONVS) and id(module) not in clustered and bool((module.weight == 0).any()):
            mask = (module.weight != 0).to(module.weight.dtype).detach()
            hooks.append(module.weight.register_hook(lambda grad, mask=mask: grad * mask.to(grad.device)))
    return hooks


def unique_counts(plans: list[LayerPlan], per_channel: bool) -> list[int]:
    """Distinct weight values of each planned layer (per channel: the most in any channel)."""
    counts = []
    for plan in plans:
        weight = plan.module.weight.detach().cpu()
        rows = weight.reshape(weight.shape[0], -1) if per_channel else weight.reshape(1, -1)
        counts.append(max(len(np.unique(row.numpy())) for row in rows))
    return counts


@register_step("cluster", ClusterParams)
def cluster(model: Any, params: ClusterParams, ctx: StepContext) -> StepResult:
    """Share k centroids per conv layer (k-means), fine-tune the centroids tied, return the plain model."""
    check_float_model(model, ctx.lineage, "cluster")
    plans = plan_layers(model, params)
    error, energy, zeros = 0.0, 0.0, 0
    for plan in plans:
        weight = plan.module.weight.detach().cpu().numpy()
        book, index, zero = cluster_weight(weight, plan.k, params.init, params.iterations, params.per_channel,
                                           params.seed)
        tie(plan.module, book, index, zero)
        shared = plan.module.weight.detach().cpu().numpy()
        error += float(((shared - weight) ** 2).sum())
        energy += float((weight ** 2).sum())
        zeros += int((weight == 0).sum())
        ctx.log({"event": "clustered", "layer": plan.name, "k": plan.k, "zero_centroid": zero,
                 "sse": float(((shared - weight) ** 2).sum())})
    metrics: dict[str, Any] = {"layers": len(plans), "weights": sum(p.module.weight.numel() for p in plans),
                               "zeros_kept": zeros, "one_shot_relative_error": error / max(energy, 1e-30)}
    hooks = keep_zeros(model, {id(p.module) for p in plans})
    try:
        if params.tune is not None:
            metrics.update(tune(model, params.tune, ctx, name="tune"))
    finally:
        for hook in hooks:
            hook.remove()
        for plan in plans:
            unshare_weight(plan.module)
    metrics["max_unique_per_layer"] = max(unique_counts(plans, params.per_channel))
    return StepResult(model, metrics=metrics)
