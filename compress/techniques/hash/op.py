"""The ``hash`` recipe op (HashedNets, Chen et al. 2015): conv weights drawn from K shared buckets.

Element i of a hashed layer's virtual weight is ``sign(i) · buckets[bucket(i)]``, both hashes of the flat
index under the layer's seed (``compress.packed.hashing``, the same integers the packed format rebuilds
with). The buckets start as the least-squares projection of the trained weights (the mean of
``sign · w`` over each bucket's members) and are then trained, FPD-distilled from the teacher by default;
autograd sums each bucket's gradients over its members. The model returned is a plain
``StackedHourglass`` with the virtual weights materialised, so export and evaluation work unchanged, and
``hgc pack`` stores each hashed layer as its buckets + seed.
"""
from __future__ import annotations

import fnmatch
from typing import Any

import numpy as np
import torch
from torch import nn

from compress.errors import HGCError
from compress.nets.shared import share_weight, unshare_weight
from compress.packed import hashing
from compress.steps import StepContext, StepResult, register_step
from compress.techniques.hash.config import HashParams
from compress.tuning import tune

SUPPORTED = (nn.Conv2d, nn.ConvTranspose2d)


def _make(module: nn.Module) -> torch.Tensor:
    return module.hash_sign * module.hash_buckets[module.hash_index]


def _load(module: nn.Module, weight: torch.Tensor) -> None:
    values = hashing.recover(weight.detach().cpu().numpy(), module.hash_seed, module.hash_buckets.numel())
    if values is None:
        raise ValueError("the weights are not this layer's hashed weights")
    with torch.no_grad():
        module.hash_buckets.copy_(torch.from_numpy(values))


def select_layers(model: nn.Module, params: HashParams) -> list[tuple[str, nn.Module]]:
    """The layers to hash; a selected layer of a type hashing does not support is refused by name."""
    chosen = []
    for name, module in model.named_modules():
        weight = module._parameters.get("weight")
        if weight is None or weight.dim() < 2:
            continue
        if not any(fnmatch.fnmatchcase(name, p) for p in params.layers) or \
                any(fnmatch.fnmatchcase(name, p) for p in params.exclude):
            continue
        if not isinstance(module, SUPPORTED):
            raise HGCError(f"hash.layers: layer {name!r} is a {type(module).__name__}; hashing supports "
                           f"{' and '.join(t.__name__ for t in SUPPORTED)} (add it to hash.exclude)")
        chosen.append((name, module))
    if not chosen:
        raise HGCError("hash.layers: no conv layer selected")
    return chosen


def hash_layer(module: nn.Module, seed: int, ratio: float) -> float:
    """Tie ``module.weight`` to its buckets (initialised by projection); returns the projection's squared error."""
    weight = module.weight.detach()
    flat = weight.cpu().numpy().ravel().astype(np.float64)
    count = hashing.bucket_count(flat.size, ratio)
    index, sign = hashing.buckets_and_signs(flat.size, seed, count)
    members = np.bincount(index, minlength=count)
    values = np.bincount(index, weights=sign * flat, minlength=count) / np.maximum(members, 1)
    share_weight(module, {"hash_buckets": torch.as_tensor(values, dtype=weight.dtype, device=weight.device)},
                 {"hash_index": torch.as_tensor(index.reshape(weight.shape), device=weight.device),
                  "hash_sign": torch.as_tensor(sign.reshape(weight.shape), dtype=weight.dtype, device=weight.device)},
                 _make, _load)
    module.__dict__["hash_seed"] = seed
    return float(((module.weight.detach() - weight) ** 2).sum())


@register_step("hash", HashParams)
def hash_weights(model: Any, params: HashParams, ctx: StepContext) -> StepResult:
    """Draw each conv's weights from ⌈weights / ratio⌉ hashed buckets (HashedNets) and train them by distillation."""
    layers = select_layers(model, params)
    for name, module in layers:
        if hashing.bucket_count(module.weight.numel(), params.ratio) >= module.weight.numel():
            raise HGCError(f"hash.ratio: layer {name!r} has {module.weight.numel()} weights; ratio {params.ratio:g} "
                           "leaves no sharing (exclude it or raise the ratio)")
    error = energy = 0.0
    buckets = weights = 0
    for name, module in layers:
        energy += float((module.weight.detach() ** 2).sum())
        error += hash_layer(module, hashing.layer_seed(params.seed, name), params.ratio)
        buckets += module.hash_buckets.numel()
        weights += module.weight.numel()
    metrics: dict[str, Any] = {"layers": len(layers), "weights": weights, "buckets": buckets,
                               "ratio_actual": weights / buckets, "projection_relative_error": error / max(energy, 1e-30)}
    ctx.log({"event": "hashed", **metrics})
    try:
        if params.tune is not None:
            metrics.update(tune(model, params.tune, ctx, name="tune"))
    finally:
        for _, module in layers:
            module.__dict__.pop("hash_seed", None)
            unshare_weight(module)
    return StepResult(model, metrics=metrics)
