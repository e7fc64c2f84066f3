"""The parameters of the ``distill`` and ``swap`` ops: one training phase distilled from the teacher.

``DistillOpParams`` is the ``distill`` op's whole configuration and the base of ``SwapParams`` (whose
extra fields live in ``swap.py``): the training fields of ``finetune.TrainPhase``, the FPD weight
``alpha``, optional feature-distillation pairs, and the validation curve (``val_every``) that lands in
the step's ``log.jsonl``. Every default is declared here once.
"""
from __future__ import annotations

from dataclasses import dataclass

from compress.distill import FeatureLayer
from compress.errors import HGCError
from compress.steps import Params, bounded, items, option
from compress.techniques.finetune import TrainPhase
from compress.train import TrainConfig


@dataclass
class FeatureLayerParams(Params):
    """One feature-distillation pair: ``{student: stacks.0.hourglass, teacher: stacks.1.hourglass, weight: 0.1}``."""

    student: str = option("", "student layer: a named_modules path such as stacks.0.hourglass")
    teacher: str | None = option(None, "teacher layer (None: the same path as the student's)")
    weight: float = bounded(0.01, 0.0, doc="weight of this pair's relative adapter MSE (MSE / mean teacher²)")

    def check(self) -> None:
        if not self.student:
            raise HGCError("student: name the student layer (a named_modules path such as stacks.0.hourglass)")

    def layer(self, where: str) -> FeatureLayer:
        """The pair as ``compress.distill.FeatureLayer`` (``where`` names it in errors)."""
        return FeatureLayer(self.student, self.teacher or self.student, self.weight, where)


@dataclass
class DistillOpParams(TrainPhase):
    """Training hyper-parameters of one distillation phase plus its loss (``alpha``, ``feature_layers``)."""

    steps: int = bounded(1000, 1, doc="optimizer steps of end-to-end distillation", scale="steps")
    seed: int = bounded(0, 0, doc="sample stream, augmentation and new-weight seed")
    val_every: int = bounded(0, 0, doc="validation PCKh every N steps (and at the end) into log.jsonl (0: never)")
    val_samples: int = bounded(500, 1, doc="validation samples per curve point", scale="eval")
    alpha: float = bounded(0.5, 0.0, 1.0, doc="FPD weight of the teacher term (0: ground truth only)")
    feature_layers: list[FeatureLayerParams] = items(
        list, "feature distillation: [{student: LAYER, teacher: LAYER, weight: 0.01}] through 1×1 adapters")

    def train_config(self, device: str) -> TrainConfig:
        """The ``compress.train.TrainConfig`` of the end-to-end phase on ``device``."""
        return self.phase_config(self.steps, device, val_every=self.val_every, val_samples=self.val_samples,
                                 distill_alpha=self.alpha)

    def layers(self, where: str) -> list[FeatureLayer]:
        """The feature pairs, each named ``<where>.feature_layers[i]`` for errors."""
        return [f.layer(f"{where}.feature_layers[{i}]") for i, f in enumerate(self.feature_layers)]

    @property
    def needs_teacher(self) -> bool:
        """False for ground-truth-only training (alpha 0 and no feature pairs): no teacher forward then."""
        return self.alpha > 0 or bool(self.feature_layers)
