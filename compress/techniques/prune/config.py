"""The one configuration of structured pruning: what a recipe's ``prune:`` mapping holds, validated once.

``PruneParams`` flows whole from the recipe (or ``hgc prune``) to the plan, the schedule and the
fine-tuning phases (the shared ``compress.tuning.TuneParams``, one per iteration: phase t draws its
samples with seed + t, so an N-step ``finetune`` control with seeds 0 … N-1 sees the same images); every
default is declared here and nowhere else.
"""
from __future__ import annotations

from dataclasses import dataclass

from compress.errors import HGCError
from compress.steps import Params, bounded, choice, items, option
from compress.tuning import TuneParams

TARGETS = ("channels", "macs", "latency")
IMPORTANCES = ("magnitude", "bn_scale", "taylor")
SCOPES = ("local", "global")
SCHEDULES = ("linear", "cubic")
HEADS = ("whole", "joints")


@dataclass
class SlimmingParams(Params):
    """Network slimming: an L1 penalty on the BatchNorm scales so ``bn_scale`` finds channels to drop."""

    l1: float = bounded(1e-4, 0.0, doc="weight of sum |gamma| over the prunable BatchNorms")
    steps: int = bounded(500, 1, doc="penalised training steps before the first pruning iteration",
                         scale="steps")


@dataclass
class PruneParams(Params):
    """Structured channel pruning: what to remove, how to rank channels, the schedule and the fine-tuning."""

    target: str = choice("channels", TARGETS, "what ratio means: of prunable channels, of MACs, or of "
                                              "measured onnxruntime CPU latency")
    ratio: float = bounded(0.5, 0.0, 1.0, doc="fraction of the target to remove, in (0, 1)")
    importance: str = choice("magnitude", IMPORTANCES, "channel ranking: weight norm, BatchNorm scale or "
                                                       "first-order Taylor (|w · dL/dw|)")
    p: int = choice(2, (1, 2), "norm of the magnitude importance (1: L1, 2: L2)")
    scope: str = choice("local", SCOPES, "rank within each layer (same ratio everywhere) or across layers")
    max_ratio: float = bounded(0.75, 0.0, 1.0, doc="the most any one layer may lose, in (0, 1)")
    round_to: int = bounded(16, 1, doc="kept channel counts are multiples of this (1: no rounding)")
    schedule: str = choice("cubic", SCHEDULES, "how the ratio grows over the iterations (cubic: AGP)")
    iterations: int = bounded(4, 1, doc="pruning iterations, each followed by a fine-tuning phase")
    heads: str = choice("whole", HEADS, "whole: heatmap heads and remaps keep every weight (so does the "
                                        "residual stream between stacks); joints: only their joint channels")
    exclude: list[str] = items(list, "layer name patterns (fnmatch) that keep every weight")
    taylor_images: int = bounded(64, 1, doc="taylor: training crops whose loss gradients rank the channels",
                                 scale="scoring")
    latency_tries: int = bounded(5, 2, doc="latency: candidate exports timed while searching the MACs ratio")
    latency_runs: int = bounded(50, 1, doc="latency: paired timed runs per candidate", scale="runs")
    latency_threads: int = bounded(1, 1, doc="latency: onnxruntime intra-op threads")
    slimming: SlimmingParams | None = option(None, "bn_scale: L1 on BatchNorm scales before and between "
                                                   "iterations: {l1: 1e-4, steps: 500}")
    finetune: TuneParams | None = items(TuneParams, "fine-tuning after each iteration, distilled by default; "
                                                    "phase t (from 0) draws with seed + t (null: one-shot)")

    def check(self) -> None:
        for name in ("ratio", "max_ratio"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise HGCError(f"{name}: {value!r} must lie in (0, 1)")
        if self.scope == "local" and self.target == "channels" and self.ratio > self.max_ratio:
            raise HGCError(f"ratio: {self.ratio!r} exceeds max_ratio {self.max_ratio!r} (local pruning removes "
                           "the same share of every layer, at most max_ratio)")
        if self.slimming is not None and self.importance != "bn_scale":
            raise HGCError(f"slimming: applies to importance bn_scale, not {self.importance}")
        if self.slimming is not None and self.finetune is None:
            raise HGCError("slimming: needs the fine-tuning phases (finetune is null)")

    def schedule_fraction(self, iteration: int) -> float:
        """Share of the final ratio reached after ``iteration`` (1 … iterations): linear or cubic (AGP)."""
        done = iteration / self.iterations
        return done if self.schedule == "linear" else 1.0 - (1.0 - done) ** 3
