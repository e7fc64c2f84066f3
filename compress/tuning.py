"""A training phase inside an op (cluster, hash, …): its parameters and its resumable run.

Ops that must train after changing the model share this schema and runner because techniques never
import each other. The phase is ``compress.train.train`` with a resumable checkpoint in the step
directory and, with ``distill``, the FPD loss against the recipe's teacher.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compress.steps import DistillParams, Params, StepContext, bounded, choice, items
from compress.train import OPTIMIZERS, TrainConfig, train


@dataclass
class TuneParams(Params):
    """Fine-tuning after a weight transformation (``compress.train.TrainConfig`` fields)."""

    steps: int = bounded(1000, 1, doc="optimizer steps", scale="steps")
    batch_size: int = bounded(16, 1, doc="images per step")
    lr: float = bounded(1e-4, 0.0, doc="learning rate")
    optimizer: str = choice("adam", OPTIMIZERS, "optimizer")
    lr_milestones: list[float] = items(lambda: [0.75], "fractions of the run where lr drops", low=0.0, high=1.0)
    lr_gamma: float = bounded(0.1, 0.0, 1.0, doc="lr factor at each milestone")
    seed: int = bounded(0, 0, doc="sample stream and augmentation seed")
    checkpoint_every: int = bounded(100, 0, doc="resumable checkpoint every N steps (0: at the end only)")
    distill: DistillParams | None = items(DistillParams, "distil from the teacher ({alpha: 0.5}); null: labels only")

    def check(self) -> None:
        self.train_config("cpu")  # TrainConfig's own rules, while the recipe is validated

    def train_config(self, device: str) -> TrainConfig:
        """The ``TrainConfig`` of this phase on ``device``."""
        return TrainConfig(steps=self.steps, batch_size=self.batch_size, lr=self.lr, optimizer=self.optimizer,
                           lr_milestones=list(self.lr_milestones), lr_gamma=self.lr_gamma, seed=self.seed,
                           checkpoint_every=self.checkpoint_every,
                           distill_alpha=self.distill.alpha if self.distill else 0.5, device=device)


def tune(model: Any, params: TuneParams, ctx: StepContext, name: str = "tune") -> dict[str, Any]:
    """Train ``model`` in place for the phase; resumes from the step's scratch checkpoint; returns metrics."""
    work = ctx.scratch(f"{name}.pt")
    ctx.scratch(f"{name}.pt.state")
    resume = ctx.resume and work.is_file() and work.with_name(f"{name}.pt.state").is_file()
    teacher = ctx.teacher() if params.distill else None
    result = train(model, ctx.data, params.train_config(ctx.device), str(work), resume=resume, teacher=teacher,
                   meta=ctx.meta, lineage=ctx.lineage, progress=ctx.progress)
    for record in result.history:
        ctx.log({"event": name, **record})
    last = result.history[-1] if result.history else {}
    return {f"{name}_steps": params.steps, f"{name}_resumed": resume, "final_loss": last.get("loss"),
            "distill_alpha": params.distill.alpha if params.distill else None}
