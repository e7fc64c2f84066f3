"""1-D k-means of one layer's weights: initialisations, Lloyd refinement, and the exact optimum.

* ``linear`` — centroids evenly spaced over [min, max] (Deep Compression's best: it keeps the rare
  large weights, which matter most), then Lloyd;
* ``density`` — centroids at equally spaced quantiles (dense where the weights are), then Lloyd;
* ``kmeans++`` — D²-weighted random seeding (Arthur & Vassilvitskii), then Lloyd;
* ``optimal`` — the least-squares optimum by dynamic programming (Wang & Song's Ckmeans.1d.dp, through
  the ``ckmeans`` package: exact, and faster than 30 Lloyd iterations at k ≤ 32 on hg2-128's 3×3 layers).

Lloyd in 1-D runs on sorted values: each assignment is a ``searchsorted`` against the midpoints between
neighbouring centroids, each update a ``bincount``. Empty clusters keep their centroid.
"""
from __future__ import annotations

import ckmeans
import numpy as np

INITS = ("linear", "density", "kmeans++", "optimal")
CKMEANS_MAX_K = 255  # the ckmeans package's limit on k


def _kmeanspp(values: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centroids = [values[rng.integers(len(values))]]
    nearest = (values - centroids[0]) ** 2
    for _ in range(1, k):
        total = nearest.sum()
        pick = values[rng.choice(len(values), p=nearest / total)] if total > 0 else values[rng.integers(len(values))]
        centroids.append(pick)
        nearest = np.minimum(nearest, (values - pick) ** 2)
    return np.sort(np.asarray(centroids))


def initial_centroids(values: np.ndarray, k: int, init: str, seed: int = 0) -> np.ndarray:
    """``k`` sorted starting centroids for ``values`` (1-D float64) by ``linear``, ``density`` or ``kmeans++``."""
    if init == "linear":
        return np.linspace(values.min(), values.max(), k)
    if init == "density":
        return np.quantile(values, (np.arange(k) + 0.5) / k)
    if init == "kmeans++":
        return _kmeanspp(values, k, np.random.default_rng(seed))
    raise ValueError(f"unknown init {init!r}")


def assign(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest of the sorted ``centroids`` for each value (ties to the lower one)."""
    return np.searchsorted((centroids[1:] + centroids[:-1]) / 2, values, side="left")


def lloyd(values: np.ndarray, centroids: np.ndarray, iterations: int) -> np.ndarray:
    """Refined sorted centroids after at most ``iterations`` Lloyd steps (stops when nothing moves)."""
    centroids = np.sort(np.asarray(centroids, dtype=np.float64))
    k = len(centroids)
    for _ in range(iterations):
        labels = assign(values, centroids)
        count = np.bincount(labels, minlength=k)
        total = np.bincount(labels, weights=values, minlength=k)
        moved = np.where(count > 0, total / np.maximum(count, 1), centroids)
        if np.array_equal(moved, centroids):
            break
        centroids = np.sort(moved)
    return centroids


def optimal_centroids(values: np.ndarray, k: int) -> np.ndarray:
    """The sorted least-squares-optimal centroids (exact dynamic programme; k ≤ 255)."""
    groups = ckmeans.ckmeans(values, min(k, len(np.unique(values))))
    return np.asarray([group.mean() for group in groups])


def cluster(values: np.ndarray, k: int, init: str, iterations: int = 30, seed: int = 0
            ) -> tuple[np.ndarray, np.ndarray]:
    """(float32 centroids, label of each value) of ``values`` in at most ``k`` clusters.

    Centroids that coincide after rounding to float32 are merged, so the labels index distinct values.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    k = min(k, len(np.unique(values)))
    if init == "optimal":
        centroids = optimal_centroids(values, k)
    else:
        centroids = lloyd(values, initial_centroids(values, k, init, seed), iterations)
    centroids = np.unique(centroids.astype(np.float32))
    return centroids, assign(values, centroids.astype(np.float64))
