"""The one configuration of structured pruning: what a recipe's ``prune:`` mapping holds, validated once.

``PruneParams`` flows whole from the recipe (or ``hgc prune``) to the plan, the schedule and the
fine-tuning phases; every default is declared here and nowhere else.
"""
from __future__ import annotations

from dataclasses import dataclass

from compress.errors import HGCError
from compress.steps import DistillParams, Params, bounded, choice, items, option
from compress.train import TrainConfig

TARGETS = ("channels", "macs", "latency")
IMPORTANCES = ("magnitude", "bn_scale", "taylor")
SCOPES = ("local", "global")
SCHEDULES = ("linear", "cubic")
HEADS = ("whole", "joints")


@dataclass
class PruneFinetuneParams(Params):
    """The fine-tuning phase after each pruning iteration (``compress.train``), distilled by default.

    Phase ``t`` (0-based) draws its samples with seed ``seed + t``, so an N-phase control run of
    ``finetune`` steps with seeds 0 … N-1 sees exactly the same images.
    """

    steps: int = bounded(250, 1, doc="optimizer steps after each pruning iteration", scale="steps")
    batch_size: int = bounded(16, 1, doc="images per step")
    lr: float = bounded(1e-4, 0.0, doc="learning rate (Adam)")
    lr_milestones: list[float] = items(list, "fractions of each phase where lr drops (none: constant)",
                                       low=0.0, high=1.0)
    lr_gamma: float = bounded(0.1, 0.0, 1.0, doc="lr factor at each milestone")
    seed: int = bounded(0, 0, doc="sample stream seed of the first phase (phase t uses seed + t)")
    checkpoint_every: int = bounded(100, 0, doc="resumable checkpoint every N steps (0: at the end only)")
    distill: DistillParams | None = items(DistillParams, "FPD distillation from the unpruned teacher "
                                                         "(null: ground truth only)")

    def check(self) -> None:
        self.train_config(0, "cpu")  # TrainConfig's own rules (milestones strictly inside (0, 1), lr > 0)

    def train_config(self, phase: int, device: str) -> TrainConfig:
        """The ``TrainConfig`` of fine-tuning phase ``phase``."""
        return TrainConfig(steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                           lr_milestones=list(self.lr_milestones), lr_gamma=self.lr_gamma, seed=self.seed + phase,
                           checkpoint_every=self.checkpoint_every,
                           distill_alpha=self.distill.alpha if self.distill else 0.5, device=device)


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
    finetune: PruneFinetuneParams | None = items(PruneFinetuneParams, "fine-tuning after each iteration "
                                                                      "(null: one-shot, no training)")

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
