"""The one configuration of the ``cluster`` op: what a recipe's ``cluster:`` mapping holds, validated once."""
from __future__ import annotations

from dataclasses import dataclass

from compress.errors import HGCError
from compress.steps import Params, bounded, choice, items, option
from compress.techniques.cluster.kmeans import INITS
from compress.tuning import TuneParams

K_MIN, K_MAX = 2, 256


@dataclass
class ClusterParams(Params):
    """Per-layer weight sharing (k centroids per conv, or per output channel), then tied fine-tuning."""

    k: int = bounded(16, K_MIN, K_MAX, doc="centroids per layer (an exact zero of a sparse layer is one of them)")
    init: str = choice("linear", INITS, "centroid initialisation (optimal: exact 1-D k-means by dynamic programming)")
    iterations: int = bounded(30, 0, doc="Lloyd iterations after linear / density / kmeans++ initialisation")
    per_channel: bool = option(False, "a codebook per output channel instead of per layer")
    exclude: list[str] = items(lambda: ["stacks.*.score"], "conv layers left unclustered (fnmatch on module names)")
    layer_k: dict = items(dict, "own k per layer pattern: {'stem.*': 32}; the first matching pattern wins")
    seed: int = bounded(0, 0, doc="kmeans++ seeding")
    tune: TuneParams | None = items(TuneParams, "tied fine-tuning (centroid gradients); null: one-shot clustering")

    def check(self) -> None:
        for pattern, k in self.layer_k.items():
            if not isinstance(pattern, str):
                raise HGCError(f"layer_k: pattern {pattern!r} must be a string")
            if not isinstance(k, int) or isinstance(k, bool) or not K_MIN <= k <= K_MAX:
                raise HGCError(f"layer_k[{pattern!r}]: {k!r} is not an integer in [{K_MIN}, {K_MAX}]")
