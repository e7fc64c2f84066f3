"""``hgc compare``: is one model really more accurate than another, or is the gap within the benchmark's noise?

Two models scored on the same images differ by a few tenths of PCKh for reasons that have nothing to do with
the technique (which images happen to be hard). The paired bootstrap answers how sure the gap is: resample
the images with replacement many times, score *both* models on each resample (the same images for both, so
what the images share cancels), and take the spread of the difference. A 95 % interval that excludes zero
says the gap would survive another draw of images from the same distribution; one that contains zero says
the data cannot tell the two apart. The ablations of ``reports/swaps/`` (distillation vs ground truth,
blockwise init vs none) are read with it.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from compress.data.skeleton import MEAN_JOINTS
from compress.errors import HGCError
from compress.evaluate import EvalReport, evaluate_file


@dataclass
class Comparison:
    """B − A in Mean PCKh on the same images, with its bootstrap interval and the joints the two disagree on."""

    a: str
    b: str
    data: str
    samples: int
    threshold: float
    pckh_a: float
    pckh_b: float
    delta: float  # pckh_b − pckh_a
    low: float  # bootstrap interval of delta
    high: float
    confidence: float
    resamples: int
    only_a: int  # annotated joints of the Mean that A gets right and B wrong
    only_b: int

    @property
    def verdict(self) -> str:
        """Which model is more accurate, or that the images cannot tell."""
        if self.low > 0:
            return "B is more accurate"
        if self.high < 0:
            return "A is more accurate"
        return "no difference the images can tell"

    def format(self) -> str:
        """The lines ``hgc compare`` prints."""
        pct = f"{self.confidence * 100:g} %"
        return "\n".join([
            f"A {self.a}: Mean PCKh@{self.threshold:g} {self.pckh_a:.2f}",
            f"B {self.b}: Mean PCKh@{self.threshold:g} {self.pckh_b:.2f}",
            f"B − A: {self.delta:+.2f} ({pct} interval {self.low:+.2f} … {self.high:+.2f}, paired bootstrap over "
            f"{self.samples} images, {self.resamples} resamples of {self.data})",
            f"joints of the Mean right in one model only: A {self.only_a}, B {self.only_b}",
            f"verdict: {self.verdict}"])


def mean_pckh_of(hits: np.ndarray, counted: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Official Mean PCKh (%) of each weighting of the images: ``weights`` (R, N) → (R,).

    ``hits`` and ``counted`` are (N, 16); a weight is how often an image is drawn, so one row of ones is the
    plain score.
    """
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a draw without any instance of the Mean joints: NaN
        per_joint = 100.0 * (weights @ hits) / (weights @ counted)
        return np.nanmean(per_joint[:, list(MEAN_JOINTS)], axis=1)


def paired_bootstrap(errors_a: np.ndarray, errors_b: np.ndarray, counted: np.ndarray, threshold: float = 0.5,
                     resamples: int = 2000, confidence: float = 0.95, seed: int = 0
                     ) -> tuple[float, float, float, float, float]:
    """(pckh_a, pckh_b, delta, low, high): B − A in Mean PCKh and its percentile interval over ``resamples``
    draws of the N images with replacement, both models scored on every draw."""
    if errors_a.shape != errors_b.shape or errors_a.shape != counted.shape:
        raise HGCError(f"compare: arrays of different shapes: errors {errors_a.shape} / {errors_b.shape}, "
                       f"counted {counted.shape}")
    if not counted[:, list(MEAN_JOINTS)].any():
        raise HGCError("compare: no annotated instance of the joints Mean PCKh averages: nothing to compare")
    if resamples < 1 or not 0 < confidence < 1:
        raise HGCError(f"compare: resamples must be ≥ 1 and confidence in (0, 1), got {resamples}, {confidence}")
    counted = counted.astype(np.float64)
    hits_a = ((errors_a < threshold) & (counted > 0)).astype(np.float64)  # NaN errors are wrong
    hits_b = ((errors_b < threshold) & (counted > 0)).astype(np.float64)
    n = len(counted)
    ones = np.ones((1, n))
    pckh_a, pckh_b = float(mean_pckh_of(hits_a, counted, ones)[0]), float(mean_pckh_of(hits_b, counted, ones)[0])
    draws = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)
    deltas = mean_pckh_of(hits_b, counted, draws) - mean_pckh_of(hits_a, counted, draws)
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(deltas, [tail, 100 - tail])  # NaN: a draw that held no Mean joint
    return pckh_a, pckh_b, pckh_b - pckh_a, float(low), float(high)


def compare_files(a: str, b: str, data: str = "synthetic:val", limit: int | None = None, threshold: float = 0.5,
                  resamples: int = 2000, confidence: float = 0.95, seed: int = 0, runtime: str | None = None,
                  batch_size: int = 32, flip: bool = False) -> Comparison:
    """Score model files ``a`` and ``b`` (checkpoints or exported models) on the same images of ``data`` and
    compare them with the paired bootstrap (see the module docstring)."""
    reports: list[EvalReport] = [evaluate_file(path, data, limit=limit, runtime=runtime, batch_size=batch_size,
                                               flip=flip) for path in (a, b)]
    first, second = reports
    if not (np.array_equal(first.indices, second.indices) and np.array_equal(first.counted, second.counted)):
        raise HGCError(f"compare: {a} and {b} were scored on different samples or joints of {data} (a synthetic "
                       "image is drawn at the model's input size): compare models of one input size")
    pckh_a, pckh_b, delta, low, high = paired_bootstrap(first.errors, second.errors, first.counted, threshold,
                                                        resamples, confidence, seed)
    mean_joints = list(MEAN_JOINTS)
    right_a = ((first.errors < threshold) & first.counted)[:, mean_joints]
    right_b = ((second.errors < threshold) & first.counted)[:, mean_joints]
    return Comparison(a=a, b=b, data=data, samples=len(first.indices), threshold=threshold, pckh_a=pckh_a,
                      pckh_b=pckh_b, delta=delta, low=low, high=high, confidence=confidence, resamples=resamples,
                      only_a=int((right_a & ~right_b).sum()), only_b=int((right_b & ~right_a).sum()))
