"""How much does FPD distillation change a student's training signal? Measured on training batches.

The training losses on every student stack S (``compress.train``): ground truth only, ``w·(S − G)²`` (G: the
ground-truth Gaussians, w: 1 for an annotated joint inside the crop, else 0); FPD,
``alpha·(S − T)² + (1 − alpha)·w·(S − G)²`` (T: the teacher's last stack), whose gradient in S is
``alpha·(S − T) + (1 − alpha)·w·(S − G)``. Distillation can only teach what that gradient holds beyond the
ground truth's, so for each student checkpoint on the same training batches (the swap op's stream,
augmentation included) this script measures the heatmap MSEs of student and teacher against the ground truth
(annotated joints) and against each other (every joint), the teacher term's share of the FPD gradient, and
the angle between the FPD and the ground-truth gradients (0°: distillation pushes exactly where ground truth
does). Models run in eval mode (norms on running statistics). Usage::

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
    """Sums over ``count`` batches and every student stack → MSEs, the teacher term's share, the angle."""
    size = student.config.input_size
    sums = dict.fromkeys(("sg", "tg", "st", "dot", "fpd", "gt", "soft", "hard"), 0.0)
    joints = pixels = 0.0
    for images, target, weight in batches(size, size // 4, count):
        s, t = student(images), teacher(images)[:, -1:]  # (B, stacks, J, H, W) against the teacher's last stack
        g, w = target[:, None], weight[:, None, :, None, None].expand_as(s)
        soft, hard = alpha * (s - t), (1 - alpha) * w * (s - g)
        gt_grad, fpd_grad = w * (s - g), soft + hard
        sums["sg"] += float((w * (s - g) ** 2).sum())
        sums["tg"] += float((w[:, :1] * (t - g) ** 2).sum()) * s.shape[1]
        sums["st"] += float(((s - t) ** 2).sum())
        sums["dot"] += float((gt_grad * fpd_grad).sum())
        sums["gt"] += float((gt_grad ** 2).sum())
        sums["fpd"] += float((fpd_grad ** 2).sum())
        sums["soft"] += float((soft ** 2).sum())
        sums["hard"] += float((hard ** 2).sum())
        joints += float(w.sum())
        pixels += float(s.numel())
    cos = sums["dot"] / math.sqrt(sums["gt"] * sums["fpd"]) if sums["gt"] and sums["fpd"] else 1.0
    return {"mse_student_gt": sums["sg"] / joints, "mse_teacher_gt": sums["tg"] / joints,
            "mse_student_teacher": sums["st"] / pixels, "teacher_share": sums["soft"] / (sums["soft"] + sums["hard"]),
            "angle_deg": math.degrees(math.acos(max(-1.0, min(1.0, cos))))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teacher")
    parser.add_argument("students", nargs="+")
    parser.add_argument("--batches", type=int, default=8, help="training batches of 16 (default 8)")
    parser.add_argument("--alpha", type=float, default=0.5)
    a = parser.parse_args()
    teacher, _ = checkpoint.load(a.teacher)
    teacher.eval()
    print("| student | MSE(S, G) | MSE(T, G) | MSE(S, T) | teacher term's share of ‖FPD gradient‖² "
          "| angle FPD vs GT gradient |")
    print("|---|---:|---:|---:|---:|---:|")
    for path in [a.teacher, *a.students]:
        student, _ = checkpoint.load(path)
        student.eval()
        r = signal(teacher, student, a.batches, a.alpha)
        print(f"| `{path}` | {r['mse_student_gt']:.3e} | {r['mse_teacher_gt']:.3e} | {r['mse_student_teacher']:.3e} "
              f"| {r['teacher_share']:.3f} | {r['angle_deg']:.1f}° |")


if __name__ == "__main__":
    main()
