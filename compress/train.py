"""The one training loop: training from scratch, fine-tuning and distillation (optionally DDP).

Batches are a pure function of (seed, step), so ``resume`` continues bit-for-bit on CPU; a teacher
turns the heatmap loss into the FPD distillation loss; ``extra_loss`` adds further terms.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn

from compress.data.dataset import PoseDataset, open_source, train_spec, val_spec
from compress.distill import check_pair
from compress.errors import HGCError, first_line
from compress.evaluate import evaluate
from compress.io import atomic_path, check_output
from compress.nets import checkpoint
from compress.nets.config import HourglassConfig
from compress.nets.hourglass import StackedHourglass
from compress.progress import progress_bar
from compress.runtime import check_device

OPTIMIZERS = ("adam", "rmsprop")
ExtraLoss = Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]
StepHook = Callable[[int], None]


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run; every field is a CLI flag and a recipe parameter."""

    steps: int = 1000
    batch_size: int = 16
    lr: float = 2.5e-4
    optimizer: str = "adam"
    lr_milestones: list[float] = field(default_factory=lambda: [0.75, 0.9])
    lr_gamma: float = 0.1
    sigma: float = 1.0
    seed: int = 0
    workers: int = 0
    val_every: int = 0
    val_samples: int = 500
    checkpoint_every: int = 0
    distill_alpha: float = 0.5
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise HGCError(f"optimizer: {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise HGCError(f"{name}: must be ≥ 1, got {getattr(self, name)}")
        if not 0.0 <= self.distill_alpha <= 1.0:
            raise HGCError(f"distill_alpha: must lie in [0, 1], got {self.distill_alpha}")
        if not self.sigma > 0:
            raise HGCError(f"sigma: the heatmap Gaussian needs sigma > 0, got {self.sigma}")
        if self.lr <= 0:
            raise HGCError(f"lr: must be > 0, got {self.lr}")
        for name in ("workers", "val_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise HGCError(f"{name}: must be ≥ 0, got {getattr(self, name)}")
        if self.val_samples < 1:
            raise HGCError(f"val_samples: must be ≥ 1, got {self.val_samples}")
        if any(not 0.0 < m < 1.0 for m in self.lr_milestones):
            raise HGCError(f"lr_milestones: fractions of the run in (0, 1), got {self.lr_milestones}")


@dataclass
class TrainResult:
    """What a run produced: final step, checkpoint path and the logged history."""

    step: int
    path: str
    history: list[dict[str, float]]


def heatmap_loss(heatmaps: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean squared error per stack (joints weighted by annotation), summed over stacks."""
    w = weight[:, None, :, None, None]
    return ((heatmaps - target[:, None]) ** 2 * w).mean(dim=(0, 2, 3, 4)).sum()


def distill_loss(student: torch.Tensor, teacher_last: torch.Tensor, target: torch.Tensor,
                 weight: torch.Tensor, alpha: float) -> torch.Tensor:
    """FPD: alpha · MSE(student_k, teacher_last) + (1 − alpha) · MSE(student_k, gt) on every stack k."""
    soft = ((student - teacher_last[:, None]) ** 2).mean(dim=(0, 2, 3, 4)).sum()
    return alpha * soft + (1.0 - alpha) * heatmap_loss(student, target, weight)


def _lr_drop_steps(steps: int, milestones: list[float]) -> list[int]:
    """The steps at which the learning rate is multiplied by ``lr_gamma`` (milestones are fractions)."""
    return sorted(int(m * steps) for m in milestones)


def _lr_factor(step: int, cfg: TrainConfig) -> float:
    return cfg.lr_gamma ** sum(step >= drop for drop in _lr_drop_steps(cfg.steps, cfg.lr_milestones))


class _Stream(torch.utils.data.Sampler):
    """Stream positions start, start+world, … for one rank: position k is the k-th sample ever drawn."""

    def __init__(self, start: int, total: int, rank: int, world: int) -> None:
        self.start, self.total, self.rank, self.world = start, total, rank, world

    def __iter__(self):
        return iter(range(self.start * self.world + self.rank, self.total * self.world, self.world))

    def __len__(self) -> int:
        return self.total - self.start


def _distributed(device: str) -> tuple[int, int, str]:
    """(rank, world, this rank's device) from torchrun's environment, initialising the process group once.

    CUDA ranks each take the GPU of their local rank and talk over NCCL; CPU ranks use gloo.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    cuda = device.startswith("cuda")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank(), world, device


def state_path(out: str) -> str:
    """Where the optimizer/step state that ``resume`` needs lives, beside the checkpoint."""
    return f"{out}.state"


def train(model: StackedHourglass, data: str, cfg: TrainConfig, out: str, *, resume: bool = False,
          teacher: nn.Module | None = None, extra_loss: ExtraLoss | None = None, val_data: str | None = None,
          meta: dict[str, Any] | None = None, lineage: list[dict[str, Any]] | None = None,
          progress: bool = True, skip_bad: bool = False, aux: nn.Module | None = None,
          on_step: StepHook | None = None) -> TrainResult:
    """Train ``model`` on ``data`` for ``cfg.steps`` steps, writing an hgc checkpoint to ``out``.

    With ``teacher`` the loss is FPD distillation (every student stack against the teacher's last stack,
    so the stack counts may differ; joints and heatmap size must match); ``resume`` continues from
    ``out``'s saved state. ``aux`` is a trainable module outside the model (feature-distillation
    adapters): called as ``aux(heatmaps, batch)`` for one more loss term, optimised with the model,
    its gradients averaged across DDP ranks, kept in the resume state and never in the checkpoint.
    ``on_step(done)`` runs after every optimizer step, before any checkpoint of that step is written
    (e.g. to re-apply pruning masks, so the saved and resumed weights keep them).
    A non-finite loss stops the run with an error that names the last good checkpoint; ``skip_bad``
    skips (and counts) unreadable MPII images instead of failing.
    """
    check_output(out)
    if val_data is None and cfg.val_every and not data.startswith("synthetic"):
        raise HGCError(f"--val-every with --data {data}: name the validation annotations with --val-data "
                       "(validating on the training file would not measure generalisation)")
    rank, world, device_name = _distributed(check_device(cfg.device))
    device = torch.device(device_name)
    torch.manual_seed(cfg.seed)
    mc = model.config
    source = open_source(train_spec(data), size=mc.input_size, seed=cfg.seed, skip_bad=skip_bad)
    dataset = PoseDataset(source, mc.input_size, mc.heatmap_size, cfg.sigma, train=True, seed=cfg.seed)
    model.to(device).train()
    if aux is not None:
        aux.to(device).train()
    ddp_devices = [device.index] if device.type == "cuda" and world > 1 else None
    net = nn.parallel.DistributedDataParallel(model, device_ids=ddp_devices) if world > 1 else model
    trained = [*model.parameters(), *(aux.parameters() if aux is not None else [])]
    optim = (torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.RMSprop)(trained, lr=cfg.lr)
    start, history = 0, []
    if resume:
        start, history = _restore(out, model, optim, cfg, aux)
    if teacher is not None:
        if isinstance(getattr(teacher, "config", None), HourglassConfig):
            check_pair(mc, teacher.config, "teacher")
        teacher.to(device).eval().requires_grad_(False)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=cfg.batch_size, sampler=_Stream(start * cfg.batch_size, cfg.steps * cfg.batch_size, rank, world),
        num_workers=cfg.workers, persistent_workers=False)
    bar = progress_bar(cfg.steps, enabled=progress and rank == 0, initial=start, desc="train", unit="step")
    saved_step, tick, step = (start if resume else None), time.perf_counter(), start
    for step, batch in enumerate(loader, start=start):
        for group in optim.param_groups:
            group["lr"] = cfg.lr * _lr_factor(step, cfg)
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        heatmaps = net(batch["image"])
        if not mc.intermediate:
            heatmaps = heatmaps[:, -1:]
        if teacher is not None:
            with torch.no_grad():
                teacher_last = teacher(batch["image"])[:, -1]
            loss = distill_loss(heatmaps, teacher_last, batch["target"], batch["weight"], cfg.distill_alpha)
        else:
            loss = heatmap_loss(heatmaps, batch["target"], batch["weight"])
        if extra_loss is not None:
            loss = loss + extra_loss(heatmaps, batch)
        if aux is not None:
            loss = loss + aux(heatmaps, batch)
        if not torch.isfinite(loss):
            where = f"{out} (step {saved_step})" if saved_step is not None else "none was written yet"
            raise HGCError(f"training stopped: loss became {loss.item()} at step {step + 1}; last good checkpoint: {where}")
        optim.zero_grad(set_to_none=True)
        loss.backward()
        if aux is not None and world > 1:  # the model's gradients are averaged by DDP, the adapters' here
            for p in aux.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= world
        optim.step()
        done = step + 1
        if on_step is not None:
            on_step(done)
        now = time.perf_counter()
        record = {"step": done, "loss": float(loss.item()), "lr": optim.param_groups[0]["lr"],
                  "seconds": now - tick, "images_per_s": cfg.batch_size * world / max(now - tick, 1e-9)}
        tick = now
        if cfg.val_every and (done % cfg.val_every == 0 or done == cfg.steps) and rank == 0:
            report = evaluate(model, val_data or val_spec(data), limit=cfg.val_samples, device=device_name)
            model.train()
            record["val_pckh"] = report.result.table()["Mean"]
        history.append(record)
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss']:.2e}", img_s=f"{record['images_per_s']:.0f}",
                        **({"pckh": f"{record['val_pckh']:.1f}"} if "val_pckh" in record else {}))
        if rank == 0 and (done == cfg.steps or (cfg.checkpoint_every and done % cfg.checkpoint_every == 0)):
            _save(model, optim, out, done, history, cfg, data, meta, lineage, aux)
            saved_step = done
    bar.close()
    if world > 1:  # DDP syncs weights; running norm statistics are taken from rank 0 like the saved file
        for buffer in model.buffers():
            dist.broadcast(buffer, 0)
        dist.barrier()
        dist.destroy_process_group()
    model.eval()
    return TrainResult(step=cfg.steps, path=out, history=history)


def _save(model: StackedHourglass, optim: torch.optim.Optimizer, out: str, step: int,
          history: list[dict[str, float]], cfg: TrainConfig, data: str, meta: dict[str, Any] | None,
          lineage: list[dict[str, Any]] | None, aux: nn.Module | None = None) -> None:
    """Write the checkpoint and, beside it, the optimizer state, history (and ``aux``) that resume needs."""
    was_training = model.training
    full_meta = {"dataset": data, "input_size": model.config.input_size, "seed": cfg.seed, "step": step,
                 "train": dataclasses.asdict(cfg), **training_record(history, cfg.batch_size), **(meta or {})}
    checkpoint.save(model, out, meta=full_meta, lineage=lineage)
    state = {"step": step, "model": model.state_dict(), "optimizer": optim.state_dict(),
             "history_json": json.dumps(history), "torch_rng": torch.get_rng_state(),
             "train_json": json.dumps(dataclasses.asdict(cfg))}
    if aux is not None:
        state["aux"] = aux.state_dict()
    with atomic_path(state_path(out)) as tmp:
        torch.save(state, tmp)
    model.train(was_training)


def training_record(history: list[dict[str, float]], batch_size: int) -> dict[str, Any]:
    """What a checkpoint keeps of its training: wall seconds and the validation curve [[step, PCKh], …]."""
    wall = sum(r.get("seconds", batch_size / r["images_per_s"]) for r in history if r.get("images_per_s"))
    curve = [[int(r["step"]), round(float(r["val_pckh"]), 4)] for r in history if "val_pckh" in r]
    return {"wall_s": round(wall, 1), "val_curve": curve}


def _check_extension(saved: dict[str, Any], cfg: TrainConfig, done: int, out: str) -> None:
    """A resumed run may change ``steps``/``lr_milestones`` only if the steps already done keep their LR.

    Then the finished run is the same as a straight run with the new settings (the sample stream is
    fixed by position), so a run stopped at its first LR drop can be extended honestly.
    """
    if "steps" not in saved or (saved["steps"], saved.get("lr_milestones")) == (cfg.steps, cfg.lr_milestones):
        return
    if cfg.steps < done:
        raise HGCError(f"--resume: {out} has already done {done} steps; --steps {cfg.steps} is fewer")
    old = _lr_drop_steps(saved["steps"], saved.get("lr_milestones", []))
    new = _lr_drop_steps(cfg.steps, cfg.lr_milestones)
    if [b for b in old if b < done] != [b for b in new if b < done]:
        raise HGCError(f"--resume: --steps {cfg.steps} with --lr-milestones {' '.join(map(str, cfg.lr_milestones))} "
                       f"would change the learning rate of the {done} steps {out} has done (LR drops at steps "
                       f"{old} then, {new} now); resume with the same command")


def _restore(out: str, model: StackedHourglass, optim: torch.optim.Optimizer,
             cfg: TrainConfig, aux: nn.Module | None = None) -> tuple[int, list[dict[str, float]]]:
    """Weights, optimizer state, RNG and history from the ``.state`` file (one atomic write, so consistent)."""
    path = state_path(out)
    if not (os.path.isfile(out) and os.path.isfile(path)):
        raise HGCError(f"--resume: no checkpoint to resume at {out} (needs {out} and {path})")
    _, info = checkpoint.load(out)
    if info.config.to_dict() != model.config.to_dict():
        raise HGCError(f"--resume: {out} was trained with a different model config")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        step = int(state["step"])
    except Exception as exc:  # any damage to the state file is reported the same way
        raise HGCError(f"--resume: {path} is damaged: {first_line(exc)}") from None
    saved_cfg = json.loads(state.get("train_json", "{}"))
    changed = [k for k in ("batch_size", "seed", "lr", "optimizer", "lr_gamma") if k in saved_cfg
               and saved_cfg[k] != getattr(cfg, k)]
    if changed:
        raise HGCError(f"--resume: {out} was trained with other settings ({', '.join(changed)}); "
                       "resume with the same command")
    _check_extension(saved_cfg, cfg, step, out)
    if "model" in state:
        model.load_state_dict(state["model"])
    elif info.meta.get("step") == step:  # older state files kept the weights only in the checkpoint
        model.load_state_dict(checkpoint.load(out)[0].state_dict())
    else:
        raise HGCError(f"--resume: {out} (step {info.meta.get('step')}) and {path} (step {step}) disagree")
    if aux is not None:
        if "aux" not in state:
            raise HGCError(f"--resume: {path} has no state for the distillation adapters; resume with the same command")
        aux.load_state_dict(state["aux"])
    optim.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    return step, json.loads(state["history_json"])


def train_new(config: HourglassConfig, data: str, cfg: TrainConfig, out: str, *, resume: bool = False,
              val_data: str | None = None, progress: bool = True, skip_bad: bool = False) -> TrainResult:
    """Build a fresh model from ``config`` (initialised from ``cfg.seed``) and train it: ``hgc train``."""
    torch.manual_seed(cfg.seed)
    model = StackedHourglass(config)
    lineage = [{"op": "train", "params": {"data": data, **dataclasses.asdict(cfg)}, "parent_sha256": None}]
    return train(model, data, cfg, out, resume=resume, val_data=val_data, lineage=lineage, progress=progress,
                 skip_bad=skip_bad)
