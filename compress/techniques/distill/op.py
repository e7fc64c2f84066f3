"""The ``distill`` recipe op: train the current model as a student of the recipe's teacher.

The loss is FPD on every student stack against the teacher's last stack
(``alpha · MSE(student_k, teacher_last) + (1 − alpha) · MSE(student_k, gt)``, ``compress.train``), plus,
with ``feature_layers``, ``weight · MSE(adapter(student_layer), teacher_layer)`` through 1×1 adapters
trained with the student and dropped afterwards (``compress.distill.FeatureDistill``). Student and
teacher may differ in stacks, widths, blocks and depth; joints and heatmap size must match. The teacher
is frozen (eval mode, ``requires_grad`` off, run under ``no_grad``). Training is ``compress.train.train``,
so DDP (torchrun), resume and the validation curve (``val_every``) work as for ``hgc train``.
Everything that can be wrong (layer names, the pair) is checked before the first step.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from compress.distill import FeatureDistill, check_pair
from compress.steps import StepContext, StepResult, register_step
from compress.techniques.distill.params import DistillOpParams
from compress.train import TrainResult, train


def step_where(ctx: StepContext, op: str) -> str:
    """``steps[N].op``: how errors name this step's parameters (the runner puts N in ``ctx.meta``)."""
    index = ctx.meta.get("recipe_step")
    return f"steps[{index}].{op}" if index is not None else op


def prepare(student: nn.Module, params: DistillOpParams, ctx: StepContext, where: str
            ) -> tuple[nn.Module | None, FeatureDistill | None]:
    """The teacher (None for ground truth only) and the feature adapters, after checking the pair and layers.

    Called before any training, so a bad pair or a missing layer is one line naming the recipe path.
    """
    if not params.needs_teacher:
        return None, None
    teacher = ctx.teacher()
    teacher.to(ctx.device).eval().requires_grad_(False)
    check_pair(student.config, teacher.config, where)
    student.to(ctx.device)
    aux = None
    if params.feature_layers:
        aux = FeatureDistill(params.layers(where), student, teacher, student.config.input_size)
    return teacher, aux


def run_phase(student: nn.Module, params: DistillOpParams, ctx: StepContext, teacher: nn.Module | None,
              aux: FeatureDistill | None, resume: bool, work: str) -> TrainResult:
    """End-to-end (distilled) training of ``student`` through ``compress.train.train``; history into log.jsonl."""
    if aux is not None:
        aux.attach(student, teacher)
    try:
        result = train(student, ctx.data, params.train_config(ctx.device), work, resume=resume, teacher=teacher,
                       aux=aux, meta=ctx.meta, lineage=ctx.lineage, progress=ctx.progress)
    finally:
        if aux is not None:
            aux.detach()
    for record in result.history:
        ctx.log({"event": "distill", **record})
    return result


def phase_metrics(result: TrainResult, params: DistillOpParams, resume: bool) -> dict[str, Any]:
    """Steps, final loss, the validation curve and the loss settings, for ``metrics.json``."""
    last = result.history[-1] if result.history else {}
    curve = [[r["step"], r["val_pckh"]] for r in result.history if "val_pckh" in r]
    return {"steps": result.step, "resumed": resume, "final_loss": last.get("loss"), "alpha": params.alpha,
            "teacher_used": params.needs_teacher, "feature_layers": len(params.feature_layers),
            "val_curve": curve, "train_seconds": round(sum(r.get("seconds", 0.0) for r in result.history), 1)}


def resumable(ctx: StepContext, name: str) -> tuple[str, bool]:
    """The scratch training checkpoint ``name`` and whether an interrupted attempt left it to resume from."""
    work = ctx.scratch(name)
    ctx.scratch(f"{name}.state")
    return str(work), ctx.resume and work.is_file() and work.with_name(f"{name}.state").is_file()


@register_step("distill", DistillOpParams)
def distill(model: Any, params: DistillOpParams, ctx: StepContext) -> StepResult:
    """Train the model by FPD distillation from the teacher (every stack vs its last), optionally on features."""
    where = step_where(ctx, "distill")
    teacher, aux = prepare(model, params, ctx, where)
    work, resume = resumable(ctx, "train.pt")
    result = run_phase(model, params, ctx, teacher, aux, resume, work)
    return StepResult(model, metrics=phase_metrics(result, params, resume))
