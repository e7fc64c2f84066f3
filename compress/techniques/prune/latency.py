"""A latency target, resolved to a MACs share by timing exported candidates against the unpruned model.

Latency is not a function of the plan that can be computed: each candidate is exported to ONNX and
timed with onnxruntime on the CPU, paired with the unpruned export (A B A B …, median of per-round
ratios, ``compress.measure``). The MACs share is searched by bisection between 0 and the most the
settings allow; a target that even the most pruned candidate misses is one error before any training.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from compress.errors import HGCError
from compress.export import export_onnx
from compress.measure.bench import bench_models
from compress.techniques.prune.config import PruneParams
from compress.techniques.prune.plan import Plan, plan_channels, plan_macs


@dataclass
class LatencySearch:
    """The MACs share that meets the latency target, and every candidate timed on the way."""

    macs_ratio: float
    tries: list[dict[str, float]] = field(default_factory=list)


def latency_removed(reference: str, candidate: str, params: PruneParams) -> float:
    """Share of ``reference``'s onnxruntime CPU latency (batch 1) that ``candidate`` saves, timed in pairs."""
    result = bench_models([reference, candidate], batches=[1], runs=params.latency_runs,
                          warmup=max(2, params.latency_runs // 5), threads=params.latency_threads, pair=True)
    return 1.0 - float(result.table["ratio_median"].iloc[1])


def _export(model: nn.Module, path: Path, data: str) -> str:
    return export_onnx(model, path, parity_images=1, data=data).path


def resolve_latency(model: nn.Module, params: PruneParams, data: str, reference: str | None = None,
                    original: dict[str, int] | None = None, macs_original: int | None = None,
                    log: Any = None) -> LatencySearch:
    """The smallest MACs share (of the candidates timed) whose candidate saves ``params.ratio`` of the latency.

    Bisection over the MACs share asked of ``plan_macs``, at most ``params.latency_tries`` steps; the value
    returned is a share a timed candidate really removed (rounding makes plans step from share to share).

    ``reference``: where the unpruned model's ONNX export is kept (a temporary file when None); it is
    exported there unless it exists.
    """
    tries: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="hgc-prune-latency-") as tmp:
        base = reference or str(Path(tmp) / "reference.onnx")
        if not Path(base).is_file():
            _export(model, Path(base), data)
        top = params.max_ratio if params.scope == "local" else 0.99

        def measure(plan: Plan) -> float:
            path = _export(plan.model, Path(tmp) / f"candidate{len(tries)}.onnx", data)
            saved = latency_removed(base, path, params)
            tries.append({"macs_removed": round(plan.macs_removed, 4), "latency_removed": round(saved, 4)})
            if log is not None:
                log({"event": "latency_try", **tries[-1]})
            return saved

        most = plan_channels(model, params, top, original, macs_original)
        if measure(most) < params.ratio:
            raise HGCError(f"ratio: a {params.ratio:.0%} latency cut is out of reach: the most pruned candidate "
                           f"({most.macs_removed:.1%} of the MACs removed, max_ratio {params.max_ratio}, round_to "
                           f"{params.round_to}) saves {tries[-1]['latency_removed']:.1%}")
        best = most.macs_removed  # the least MACs removal known to meet the target
        lo, hi = 0.0, best
        for _ in range(params.latency_tries - 1):
            mid = (lo + hi) / 2
            plan = plan_macs(model, params, mid, original, macs_original)
            if plan.macs_removed >= best:  # rounding lands on a plan no lighter than the best: nothing to time
                hi = mid
            elif measure(plan) >= params.ratio:
                best, hi = plan.macs_removed, mid
            else:
                lo = mid
    return LatencySearch(macs_ratio=best, tries=tries)
