"""Seconds per training step of every swap recipe's student at hg2-128 size, to size the suite's budget.

For each recipe given (``swap`` or ``distill`` as its first step) the student is built as the op builds it
(``build_student``) and, round-robin so a machine shared with other jobs slows every candidate alike, one
step of each phase is timed on a fixed batch of 16: *distill* (teacher forward under no_grad, student
forward and backward, Adam) and *blockwise* (teacher forward with the block hooks, the paired blocks'
forward and backward, Adam). Also timed in the same rounds: a plain hg2-128 training step (the reference
the issue quotes as ~1 step/s), making a batch of 16 synthetic training crops (``compress.train`` makes
them in the training process) and one batch-32 evaluation forward of the student (the validation curve).
Prints one JSON line per recipe with medians over the rounds after the first, and each as a multiple of
the reference step. Usage (one thread, as the suite runs)::

    OMP_NUM_THREADS=1 python reports/swaps/step_cost.py recipes/swap-*.yaml recipes/control-finetune.yaml
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from compress.data.dataset import PoseDataset, open_source
from compress.nets import checkpoint
from compress.recipe import load_recipe
from compress.techniques.distill import SwapParams, build_student
from compress.train import distill_loss, heatmap_loss


def _timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="+")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--base", default="models/hg2-128.pt")
    args = parser.parse_args()
    torch.set_num_threads(1)
    teacher, info = checkpoint.load(args.base)
    teacher.requires_grad_(False).eval()
    size = info.config.input_size
    dataset = PoseDataset(open_source("synthetic:train", size=size), size, size // 4, train=True)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(16)])
    image, target, weight = batch["image"], batch["target"], batch["weight"]
    jobs: dict[str, dict[str, Callable[[], None]]] = {}
    torch.manual_seed(0)
    reference = checkpoint.load(args.base)[0].train()
    ref_optim = torch.optim.Adam(reference.parameters(), lr=1e-9)

    def plain() -> None:
        ref_optim.zero_grad()
        heatmap_loss(reference(image), target, weight).backward()
        ref_optim.step()

    counter = iter(range(10**9))
    jobs["reference"] = {"step": plain, "data": lambda: [dataset[16 + next(counter)] for _ in range(16)]}
    for path in args.recipes:
        recipe = load_recipe(path)
        op, params = recipe.steps[0].op, recipe.steps[0].params
        changes = params.config if op == "swap" else {}
        student, _, paths = build_student(teacher, SwapParams(config=changes), "swap")
        jobs[recipe.name] = _student_jobs(student.train(), teacher, paths, image, target, weight)
    times: dict[str, dict[str, list[float]]] = {name: {k: [] for k in fns} for name, fns in jobs.items()}
    for round_ in range(args.rounds):
        for name, fns in jobs.items():
            for kind, fn in fns.items():
                seconds = _timed(fn)
                if round_:
                    times[name][kind].append(seconds)
    ref = statistics.median(times["reference"]["step"])
    data = statistics.median(times["reference"]["data"])
    print(json.dumps({"name": "reference", "plain_step_s": round(ref, 3), "batch16_data_s": round(data, 3)}))
    for name, kinds in times.items():
        if name == "reference":
            continue
        row = {k: round(statistics.median(v), 3) for k, v in kinds.items() if v}
        row.update({f"{k}_x": round(v / ref, 2) for k, v in list(row.items())})
        print(json.dumps({"name": name, **row}))


def _student_jobs(student: torch.nn.Module, teacher: torch.nn.Module, paths: list[str], image: torch.Tensor,
                  target: torch.Tensor, weight: torch.Tensor) -> dict[str, Callable[[], None]]:
    """The timed closures of one student: a distillation step, a blockwise step (if any) and an eval forward."""
    optim = torch.optim.Adam(student.parameters(), lr=1e-9)

    def distill() -> None:
        with torch.no_grad():
            last = teacher(image)[:, -1]
        optim.zero_grad()
        distill_loss(student(image), last, target, weight, 0.5).backward()
        optim.step()

    def evaluate() -> None:
        student.eval()
        with torch.no_grad():
            student(torch.cat([image, image]))
        student.train()

    jobs = {"distill": distill, "eval32": evaluate}
    if paths:
        s_modules, t_modules = dict(student.named_modules()), dict(teacher.named_modules())
        caught: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

        def keep(path: str) -> Callable[..., None]:
            def hook(_m: torch.nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
                caught[path] = (inputs[0], out)
            return hook

        block_optim = torch.optim.Adam([q for p in paths for q in s_modules[p].parameters()], lr=1e-9)

        def blockwise() -> None:
            hooks = [t_modules[p].register_forward_hook(keep(p)) for p in paths]
            with torch.no_grad():
                teacher(image)
            for hook in hooks:
                hook.remove()
            block_optim.zero_grad()
            sum(F.mse_loss(s_modules[p](caught[p][0]), caught[p][1]) for p in paths).backward()
            block_optim.step()
            caught.clear()

        jobs["blockwise"] = blockwise
    return jobs


if __name__ == "__main__":
    main()
