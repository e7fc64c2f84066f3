"""Latency harness: warm-up, many timed runs, percentiles; and a paired A B A B … mode for ratios.

Timings are wall-clock around the predictor call (input in host memory, heatmaps back in host memory),
so PyTorch and onnxruntime, CPU and GPU are timed end to end the same way. On a shared, noisy machine
single medians drift; the per-pair ratio of back-to-back runs does not, which is why comparisons between
models are made in one paired run.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

Predictor = Callable[[np.ndarray], Any]


@dataclass
class Timing:
    """Raw timed runs (milliseconds) and their summary."""

    ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """p50/p90/p99, mean, min and standard deviation in milliseconds."""
        arr = np.asarray(self.ms, dtype=np.float64)
        p50, p90, p99 = np.percentile(arr, [50, 90, 99])
        return {"p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99), "mean_ms": float(arr.mean()),
                "min_ms": float(arr.min()), "std_ms": float(arr.std())}


def bench_images(input_size: int, batch: int, seed: int = 0) -> np.ndarray:
    """A fixed batch of uniform [0, 1] float32 images (dense convolutions cost the same on any content)."""
    return np.random.default_rng(seed).random((batch, 3, input_size, input_size), dtype=np.float32)


def _timed(predict: Predictor, images: np.ndarray) -> float:
    start = time.perf_counter()
    predict(images)
    return (time.perf_counter() - start) * 1e3


SETTLE_CALLS = 3  # untimed calls before each paired timed call: see time_pairs


def time_predictor(predict: Predictor, images: np.ndarray, runs: int = 50, warmup: int = 10) -> Timing:
    """Run ``warmup`` untimed calls, then ``runs`` timed calls of ``predict(images)``."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be ≥ 1 and warmup ≥ 0, got runs={runs}, warmup={warmup}")
    for _ in range(warmup):
        predict(images)
    return Timing([_timed(predict, images) for _ in range(runs)])


def time_pairs(predicts: Sequence[Predictor], images: Sequence[np.ndarray], runs: int = 50,
               warmup: int = 10, settle: int = SETTLE_CALLS) -> list[Timing]:
    """Alternate the predictors A B (C …) A B … for ``runs`` rounds after warming each one up.

    Round ``r`` of every predictor ran back to back, so ``ms[r] / reference.ms[r]`` is a paired ratio.
    ``settle`` untimed calls just before each timed one bring that model's weights back into the caches:
    in a round over many files (a report's 65) each is otherwise timed cold, after the others evicted it,
    which slows large models more than small ones (the base ran 12.1 ms cold, ~8 ms warm) — a deployed
    model runs warm. One call is not enough for a small model timed after a large one: on the AMX Xeon the
    0.6 MB int8 uniform cut ran 2.22 ms paired with the 6.9 MB base at ``settle=1``, 1.99 ms at 3 and 2.01 ms
    at 10 (1.97 ms alone), the base ~8 ms at each; hence ``SETTLE_CALLS`` = 3.
    """
    if len(predicts) < 2 or len(predicts) != len(images):
        raise ValueError("pair timing needs at least two predictors, each with its images")
    if runs < 1 or warmup < 0 or settle < 0:
        raise ValueError(f"runs must be ≥ 1, warmup and settle ≥ 0, got runs={runs}, warmup={warmup}, "
                         f"settle={settle}")
    for _ in range(warmup):
        for predict, batch in zip(predicts, images):
            predict(batch)
    timings = [Timing() for _ in predicts]
    for _ in range(runs):
        for predict, batch, timing in zip(predicts, images, timings):
            for _ in range(settle):
                predict(batch)
            timing.ms.append(_timed(predict, batch))
    return timings


def ratio_summary(timing: Timing, reference: Timing) -> dict[str, float]:
    """Median and interquartile range of the per-round ratios ``timing / reference`` (< 1: faster)."""
    ratios = np.asarray(timing.ms) / np.asarray(reference.ms)
    q25, median, q75 = np.percentile(ratios, [25, 50, 75])
    return {"ratio_median": float(median), "ratio_q25": float(q25), "ratio_q75": float(q75),
            "ratio_iqr": float(q75 - q25)}
