"""The ``finetune`` recipe op: continue training the current model, optionally distilled from the teacher.

It is the one training loop (``compress.train.train``) with a resumable checkpoint in the step
directory, so a killed run continues bit-for-bit from its last periodic checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compress.errors import HGCError
from compress.steps import DistillParams, Params, StepContext, StepResult, bounded, choice, items, option, register_step
from compress.train import OPTIMIZERS, TrainConfig, train


@dataclass
class TrainPhase(Params):
    """One training phase's ``compress.train.TrainConfig`` fields, declared once for finetune, distill and swap.

    ``finetune`` adds the optional teacher (``distill``); the ``distill``/``swap`` ops add the FPD weight,
    feature pairs and the validation curve (``compress.techniques.distill.params``).
    """

    steps: int = bounded(1000, 1, doc="optimizer steps", scale="steps")
    batch_size: int = bounded(16, 1, doc="images per step")
    lr: float = bounded(2.5e-4, 0.0, doc="learning rate")
    optimizer: str = choice("adam", OPTIMIZERS, "optimizer")
    lr_milestones: list[float] = items(lambda: [0.75, 0.9], "fractions of the run where lr drops",
                                       low=0.0, high=1.0)
    lr_gamma: float = bounded(0.1, 0.0, 1.0, doc="lr factor at each milestone")
    sigma: float = bounded(1.0, 0.0, doc="heatmap Gaussian sigma (heatmap pixels, > 0)")
    seed: int = bounded(0, 0, doc="sample stream and augmentation seed")
    checkpoint_every: int = bounded(100, 0, doc="resumable checkpoint every N steps (0: at the end only)")

    def check(self) -> None:
        if not self.sigma > 0:  # a zero-width Gaussian divides by zero: NaN targets
            raise HGCError(f"sigma: {self.sigma!r} must be > 0")
        self.phase_config(self.steps, "cpu")  # TrainConfig's own rules (e.g. milestones strictly inside (0, 1))

    def phase_config(self, steps: int, device: str, **extra: Any) -> TrainConfig:
        """The ``TrainConfig`` of this phase run for ``steps`` steps on ``device``; ``extra``: the subclass's fields.

        ``check`` builds one too, so training's own rules are enforced while the recipe is validated.
        """
        return TrainConfig(steps=steps, batch_size=self.batch_size, lr=self.lr, optimizer=self.optimizer,
                           lr_milestones=list(self.lr_milestones), lr_gamma=self.lr_gamma, sigma=self.sigma,
                           seed=self.seed, checkpoint_every=self.checkpoint_every, device=device, **extra)


@dataclass
class FinetuneParams(TrainPhase):
    """Training hyper-parameters of one fine-tuning phase, optionally distilled from the teacher."""

    distill: DistillParams | None = option(None, "distil from the teacher: {alpha: 0.5}")

    def train_config(self, steps: int, device: str) -> TrainConfig:
        """The ``TrainConfig`` of this phase, run for ``steps`` steps on ``device``."""
        return self.phase_config(steps, device, distill_alpha=self.distill.alpha if self.distill else 0.5)


@register_step("finetune", FinetuneParams)
def finetune(model: Any, params: FinetuneParams, ctx: StepContext) -> StepResult:
    """Continue training the model for N steps (FPD-distilled from the teacher with ``distill``)."""
    cfg = params.train_config(params.steps, ctx.device)
    work = ctx.scratch("train.pt")
    ctx.scratch("train.pt.state")
    resume = ctx.resume and work.is_file() and work.with_name("train.pt.state").is_file()
    teacher = ctx.teacher() if params.distill else None
    result = train(model, ctx.data, cfg, str(work), resume=resume, teacher=teacher, meta=ctx.meta,
                   lineage=ctx.lineage, progress=ctx.progress)
    for record in result.history:
        ctx.log(record)
    last = result.history[-1] if result.history else {}
    return StepResult(model, metrics={"steps": cfg.steps, "resumed": resume, "final_loss": last.get("loss"),
                                      "distill_alpha": params.distill.alpha if params.distill else None})

