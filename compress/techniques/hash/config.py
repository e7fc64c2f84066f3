"""The one configuration of the ``hash`` op (HashedNets): what a recipe's ``hash:`` mapping holds."""
from __future__ import annotations

from dataclasses import dataclass

from compress.steps import Params, bounded, items
from compress.tuning import TuneParams


def _tune() -> TuneParams:
    return TuneParams(steps=2000, lr=2.5e-4)


@dataclass
class HashParams(Params):
    """Virtual conv weights drawn from K = ⌈numel / ratio⌉ shared buckets per layer, trained by distillation."""

    ratio: float = bounded(8.0, 1.0, doc="compression factor per layer: K = ⌈weights / ratio⌉ buckets")
    seed: int = bounded(0, 0, doc="hash seed (each layer's seed derives from it and the layer name)")
    layers: list[str] = items(lambda: ["*"], "layers to hash (fnmatch on module names of weight-carrying layers)")
    exclude: list[str] = items(lambda: ["stacks.*.score"], "layers left plain (fnmatch on module names)")
    tune: TuneParams | None = items(_tune, "training of the buckets (FPD-distilled from the teacher by default); "
                                           "null: projection only")
