"""How much does FPD distillation change a student's training signal? Measured on training batches.

The FPD loss on a student stack S is ``alpha·MSE(S, T) + (1 − alpha)·MSE(S, G)`` (T: the teacher's last
stack, G: the ground-truth Gaussians), whose gradient in S is ``(S − G) − alpha·(T − G)``: ground-truth
training towards a target moved by ``alpha·(T − G)``. Distillation can only teach what that move holds,
so this script measures, for each student checkpoint on the same training batches (the swap op's stream,
augmentation included), the heatmap MSEs of student and teacher against the ground truth and each other,
the size of the move against the student's own error (``‖alpha(T − G)‖² / ‖S − G‖²``, per pixel, joints
weighted as the loss weights them) and the angle between the two gradients (0°: distillation pushes exactly
where ground truth does). Usage::

    OMP_NUM_THREADS=1 python reports/swaps/distill_signal.py models/hg2-128.pt STUDENT.pt [STUDENT.pt …] \
        --batches 8 --alpha 0.5
"""
from __future__ import annotations

import argparse
import math

import torch

from compress.data.dataset import PoseDataset, open_source
from compress.nets import checkpoint


def batches(input_size: int, heatmap_size: int, count: int, batch_size: int = 16, seed: int = 0):
    """The first ``count`` training batches of the synthetic stream at ``seed`` (the ops' default seed 0)."""
    data = PoseDataset(open_source("synthetic:train", size=input_size), input_size, heatmap_size, train=True,
                       seed=seed)
    for b in range(count):
        items = [data[b * batch_size + i] for i in range(batch_size)]
        yield (torch.stack([it["image"] for it in items]), torch.stack([it["target"] for it in items]),
               torch.stack([it["weight"] for it in items]))


@torch.no_grad()
def signal(teacher: torch.nn.Module, student: torch.nn.Module, count: int, alpha: float) -> dict[str, float]:
    """Weighted sums over ``count`` batches → MSEs, the move's relative size and the gradients' angle."""
    size = student.config.input_size
    sums = dict.fromkeys(("sg", "tg", "st", "dot", "fpd"), 0.0)
    pixels = 0.0
    for images, target, weight in batches(size, size // 4, count):
        s, t = student(images)[:, -1], teacher(images)[:, -1]
        w = weight[:, :, None, None].expand_as(target)
        gt_grad, move = s - target, alpha * (t - target)
        fpd_grad = gt_grad - move
        sums["sg"] += float((gt_grad ** 2 * w).sum())
        sums["tg"] += float(((t - target) ** 2 * w).sum())
        sums["st"] += float(((s - t) ** 2 * w).sum())
        sums["dot"] += float((gt_grad * fpd_grad * w).sum())
        sums["fpd"] += float((fpd_grad ** 2 * w).sum())
        pixels += float(w.sum())
    angle = math.degrees(math.acos(max(-1.0, min(1.0, sums["dot"] / math.sqrt(sums["sg"] * sums["fpd"])))))
    return {"mse_student_gt": sums["sg"] / pixels, "mse_teacher_gt": sums["tg"] / pixels,
            "mse_student_teacher": sums["st"] / pixels, "move_vs_error": alpha ** 2 * sums["tg"] / sums["sg"],
            "angle_deg": angle}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teacher")
    parser.add_argument("students", nargs="+")
    parser.add_argument("--batches", type=int, default=8, help="training batches of 16 (default 8)")
    parser.add_argument("--alpha", type=float, default=0.5)
    a = parser.parse_args()
    teacher, _ = checkpoint.load(a.teacher)
    teacher.eval()
    print("| student | MSE(S, G) | MSE(T, G) | MSE(S, T) | ‖α(T−G)‖² / ‖S−G‖² | angle FPD vs GT gradient |")
    print("|---|---:|---:|---:|---:|---:|")
    for path in [a.teacher, *a.students]:
        student, _ = checkpoint.load(path)
        student.eval()
        r = signal(teacher, student, a.batches, a.alpha)
        print(f"| `{path}` | {r['mse_student_gt']:.3e} | {r['mse_teacher_gt']:.3e} | {r['mse_student_teacher']:.3e} "
              f"| {r['move_vs_error']:.3f} | {r['angle_deg']:.1f}° |")


if __name__ == "__main__":
    main()
