"""The ``swap`` recipe op: a student built from the current model's config with fields replaced, trained from it.

1. ``student_config``: the current config with ``config: {block: dice, features: 64, …}`` applied (checked
   when the recipe is read on a stand-in base, and again on the real one before anything trains). The
   student is built at its nominal widths (a pruned base's ``widths`` do not carry over); ``joints``,
   ``input_size`` and ``widths`` cannot be swapped — the student must predict the teacher's heatmaps.
2. ``transplant``: every tensor whose name and shape match is copied; new upsamplers and concat fusions
   start as the operations they replace, HRU blocks around the teacher's bottleneck, blocks appended to a
   sequence as the identity; the blocks are sorted into kept / blockwise / scratch.
3. ``blockwise``: the changed blocks learn, for ``blockwise_steps`` steps, to reproduce the current
   model's block at the same path from that block's own input (all at once, one teacher forward per batch).
   Blocks without a same-shaped counterpart (width or stack changes) start from scratch; the step's metrics
   list them (``blocks_from_scratch``).
4. End-to-end distillation from the recipe's teacher for ``steps`` steps (the ``distill`` op's loop).

Resumable: the blockwise result is kept in the step directory until the step is done, and the end-to-end
phase resumes from its periodic checkpoint.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from compress.errors import HGCError
from compress.nets import checkpoint
from compress.nets.blocks import build_block
from compress.nets.config import HourglassConfig
from compress.nets.hourglass import StackedHourglass
from compress.steps import StepContext, StepResult, bounded, items, option, register_step, unknown_key_error
from compress.techniques.distill.blockwise import blockwise_init
from compress.techniques.distill.op import phase_metrics, prepare, resumable, run_phase, step_where
from compress.techniques.distill.params import DistillOpParams
from compress.techniques.distill.transplant import copy_matching, plan_blocks, preserve_blocks, preserve_function

FIXED = {"joints": "the student must predict the teacher's joints",
         "input_size": "the student must predict heatmaps of the teacher's size",
         "widths": "a swap builds nominal widths (prune the student afterwards)"}


def student_config(base: HourglassConfig, changes: dict[str, Any], where: str = "config") -> HourglassConfig:
    """``base`` with ``changes`` applied and ``widths`` cleared, validated down to building one block.

    Errors are one line naming ``where`` and the field (``config.block: unknown block type 'x'…``).
    """
    known = [f.name for f in dataclasses.fields(HourglassConfig)]
    for key in changes:
        if key not in known:
            raise unknown_key_error(str(key), known, where)
        if key in FIXED:
            raise HGCError(f"{where}.{key}: not swappable: {FIXED[key]}")
    try:
        config = base.replace(**{**changes, "widths": {}})
        build_block(config.block, config.features, config.features, config.norm, config.block_args,
                    config.heatmap_size)
    except HGCError as exc:
        raise _rename(exc, where) from None
    return config


def _rename(exc: HGCError, where: str) -> HGCError:
    """``config.x: …`` (the config's own wording) as ``<where>.x: …``."""
    message = str(exc)
    return HGCError(where + message[len("config"):] if message.startswith("config") else f"{where}: {message}")


def _stand_in(changes: dict[str, Any]) -> HourglassConfig:
    """A base for checking ``changes`` while the recipe is read (the real one is known only at run time)."""
    depth = changes.get("depth")
    return HourglassConfig(stacks=len(depth) if isinstance(depth, list) and depth else 2)


@dataclass
class SwapParams(DistillOpParams):
    """A ``distill`` phase plus the config changes that make the student and its blockwise warm start."""

    config: dict[str, Any] = items(lambda: {"block": "dws"},
                                   "config fields to replace: {block: dice, block_args: {units: 1}, features: 64, "
                                   "stacks: 1, depth: [4, 3], modules: 2, norm: group, upsample: deconv, skip: concat}")
    blockwise_steps: int = bounded(300, 0, doc="steps of blockwise imitation of the replaced blocks (0: none)",
                                   scale="steps")
    blockwise_lr: float = bounded(3e-3, 0.0, doc="Adam learning rate of the blockwise phase (constant)")
    preserve: bool = option(True, "start new deconv upsamplers as nearest ×2, new concat fusions as a sum, "
                                  "HRU blocks around the teacher's bottleneck and appended blocks as identity")

    def check(self) -> None:
        super().check()
        if not self.blockwise_lr > 0:
            raise HGCError(f"blockwise_lr: {self.blockwise_lr!r} must be > 0")
        student_config(_stand_in(self.config), self.config)


def build_student(model: StackedHourglass, params: SwapParams, where: str
                  ) -> tuple[StackedHourglass, dict[str, Any], list[str]]:
    """The student (weights transplanted from ``model``), its transplant metrics and its blockwise paths."""
    config = student_config(model.config, params.config, f"{where}.config")
    torch.manual_seed(params.seed)
    try:
        student = StackedHourglass(config)
    except HGCError as exc:
        raise _rename(exc, f"{where}.config") from None
    student.to(next(model.parameters()).device)
    copied, fresh = copy_matching(student, model)
    preserved = preserve_function(student, model) if params.preserve else []
    blocks = preserve_blocks(student, model) if params.preserve else []
    plan = plan_blocks(student, model, copied, config.input_size, blocks)
    metrics = {"student_config": {k: v for k, v in config.to_dict().items() if k in params.config},
               "tensors_copied": len(copied), "tensors_new": len(fresh), "layers_preserved": preserved,
               "blocks_preserved": blocks,
               "widths_dropped": len(model.config.widths), "blocks_kept": len(plan.kept),
               "blocks_blockwise": plan.blockwise, "blocks_from_scratch": plan.scratch}
    return student, metrics, plan.blockwise


@register_step("swap", SwapParams)
def swap(model: Any, params: SwapParams, ctx: StepContext) -> StepResult:
    """Swap config fields (block, features, stacks, depth…), init the new blocks blockwise, then distil."""
    where = step_where(ctx, "swap")
    model.to(ctx.device).eval()
    student, metrics, paths = build_student(model, params, where)
    teacher, aux = prepare(student, params, ctx, where)  # pair and feature layers checked before training
    warm = ctx.scratch("blockwise.pt")
    metrics["blockwise_steps"] = 0
    if ctx.resume and warm.is_file():
        done, info = checkpoint.load(warm)
        student.load_state_dict(done.state_dict())
        earlier = params.blockwise_steps if paths else 0  # a warm checkpoint saved before steps were recorded
        metrics.update(blockwise_resumed=True, blockwise_steps=int(info.meta.get("blockwise_steps", earlier)))
    elif params.blockwise_steps and paths:
        # the blocks being replaced are the current model's (frozen here; the op returns the student)
        result = blockwise_init(student, model, paths, ctx.data, params.blockwise_steps,
                                batch_size=params.batch_size, lr=params.blockwise_lr, sigma=params.sigma,
                                seed=params.seed, device=ctx.device, log=ctx.log, progress=ctx.progress)
        metrics.update(blockwise_steps=result.steps, blockwise_mse_first=_mean(result.first),
                       blockwise_mse_last=_mean(result.last))
        checkpoint.save(student, warm, meta={**ctx.meta, "blockwise_steps": result.steps}, lineage=ctx.lineage)
    work, resume = resumable(ctx, "train.pt")
    result = run_phase(student, params, ctx, teacher, aux, resume, work)
    return StepResult(student, metrics={**metrics, **phase_metrics(result, params, resume)})


def _mean(values: dict[str, float]) -> float | None:
    return sum(values.values()) / len(values) if values else None
