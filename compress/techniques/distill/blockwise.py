"""Blockwise initialisation: each new student block learns to reproduce the teacher block it replaces.

One teacher forward per batch (eval mode, ``no_grad``) with forward hooks on the paired teacher blocks
catches every block's input and output; each student block then runs on *the teacher block's input* and
its MSE to the teacher block's output is summed over all blocks — one backward, one optimizer step for
all of them at once. The blocks share no parameters, so the sum trains each on its own MSE. Only the
paired blocks' parameters move; their norms gather running statistics on the teacher's activations.
A short local phase: it gives end-to-end distillation a warm start instead of random blocks.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from compress.data.dataset import PoseDataset, open_source, train_spec
from compress.errors import HGCError
from compress.progress import progress_bar


@dataclass
class BlockwiseResult:
    """Per-block MSE to the teacher block on the first and the last batch, and the steps run."""

    steps: int
    first: dict[str, float]
    last: dict[str, float]


def blockwise_init(student: nn.Module, teacher: nn.Module, paths: list[str], data: str, steps: int,
                   batch_size: int, lr: float, sigma: float = 1.0, seed: int = 0,
                   device: str = "cpu", log: Callable[[dict[str, Any]], None] | None = None,
                   log_every: int = 50, progress: bool = False) -> BlockwiseResult:
    """Train the student blocks at ``paths`` to imitate the teacher blocks at the same paths (Adam, constant lr).

    Images come from ``data``'s training stream (as ``compress.train`` draws them, positions 0…); ``log``
    gets ``{"event": "blockwise", "step", "mse"}`` every ``log_every`` steps and at the end.
    """
    if not paths or steps < 1:
        return BlockwiseResult(0, {}, {})
    cfg = student.config
    s_modules, t_modules = dict(student.named_modules()), dict(teacher.named_modules())
    blocks = [s_modules[p] for p in paths]
    teacher.to(device).eval().requires_grad_(False)
    student.to(device)
    caught: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = [t_modules[p].register_forward_hook(_catch(caught, p)) for p in paths]
    params = [p for block in blocks for p in block.parameters()]
    optim = torch.optim.Adam(params, lr=lr)
    torch.manual_seed(seed)
    source = open_source(train_spec(data), size=cfg.input_size, seed=seed)
    dataset = PoseDataset(source, cfg.input_size, cfg.heatmap_size, sigma, train=True, seed=seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=range(steps * batch_size))
    bar = progress_bar(steps, enabled=progress, desc="blockwise", unit="step")
    first: dict[str, float] = {}
    per_block: dict[str, float] = {}
    was_training = student.training
    try:
        for block in blocks:
            block.train()
        for step, batch in enumerate(loader, start=1):
            caught.clear()
            with torch.no_grad():
                teacher(batch["image"].to(device))
            losses = [F.mse_loss(block(caught[p][0]), caught[p][1]) for p, block in zip(paths, blocks)]
            total = torch.stack(losses).sum()
            if not torch.isfinite(total):
                raise HGCError(f"blockwise initialisation stopped: the block MSE became {total.item()} at step {step}")
            optim.zero_grad(set_to_none=True)
            total.backward()
            optim.step()
            per_block = {p: float(v.detach()) for p, v in zip(paths, losses)}
            if step == 1:
                first = dict(per_block)
            if log is not None and (step % log_every == 0 or step == steps or step == 1):
                log({"event": "blockwise", "step": step, "mse": float(total.detach()),
                     "mse_per_block": per_block})
            bar.update(1)
            bar.set_postfix(mse=f"{float(total.detach()):.2e}")
    finally:
        for hook in hooks:
            hook.remove()
        bar.close()
        student.train(was_training)
    return BlockwiseResult(steps, first, per_block)


def block_mse(student: nn.Module, teacher: nn.Module, paths: list[str], images: torch.Tensor,
              train_mode: bool = True) -> dict[str, float]:
    """Each student block's MSE to its teacher block, fed the teacher block's input for ``images``.

    ``train_mode`` measures what the blockwise phase optimises (norms on batch statistics, run on copies
    of the blocks so no running statistic moves); otherwise the blocks run in eval mode. The teacher runs
    in eval mode either way.
    """
    s_modules, t_modules = dict(student.named_modules()), dict(teacher.named_modules())
    caught: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = [t_modules[p].register_forward_hook(_catch(caught, p)) for p in paths]
    was = teacher.training
    try:
        teacher.eval()
        with torch.no_grad():
            teacher(images)
            errors = {}
            for p in paths:
                block = copy.deepcopy(s_modules[p]).train(train_mode)
                errors[p] = float(F.mse_loss(block(caught[p][0]), caught[p][1]))
            return errors
    finally:
        for hook in hooks:
            hook.remove()
        teacher.train(was)


def _catch(store: dict[str, tuple[torch.Tensor, torch.Tensor]], path: str) -> Any:
    """A forward hook keeping (input, output) of the block at ``path`` (returns None: output untouched)."""
    def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        store[path] = (inputs[0].detach(), output.detach())
    return hook
