"""onnxruntime latency of every swap recipe's student as a design, before any training, against the teacher.

Latency depends on the graph, not on the weights, so a student built as the ``swap`` op builds it
(``build_student``: the teacher's tensors copied where they fit, the rest at their seeded init) and
exported to ONNX runs as fast as the trained one will. This answers, in minutes instead of the suite's
hours, which of the papers' lighter designs can be faster in onnxruntime on a CPU at all: fewer MACs
through depthwise, dilated or dimension-wise convolutions need not mean less time. The files are timed
paired with the teacher's export (``hgc bench --pair``: alternated per run, so a shared machine slows all
alike) at batch 1 on one thread. Prints one row per recipe: params, MMACs, p50 ms and ×faster (the
median per-run ratio). Usage::

    OMP_NUM_THREADS=1 python reports/swaps/student_latency.py recipes/swap-*.yaml --runs 50
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from compress.export import export_onnx
from compress.measure.bench import bench_models
from compress.nets import checkpoint
from compress.recipe import load_recipe
from compress.techniques.distill import SwapParams, build_student


def export_students(base: str, recipes: list[str], out: Path) -> tuple[dict[str, str], dict[str, int]]:
    """Export the teacher and each swap recipe's student (built as the op builds it) to ONNX under ``out``.

    Returns (name → ONNX path, name → parameters), the teacher first; recipes not starting with ``swap`` are
    skipped.
    """
    teacher, _ = checkpoint.load(base)
    teacher.eval()
    files = {"teacher": str(out / "teacher.onnx")}
    params = {"teacher": sum(t.numel() for t in teacher.parameters())}
    export_onnx(base, files["teacher"])
    for path in recipes:
        recipe = load_recipe(path)
        step = recipe.steps[0]
        if step.op != "swap":
            continue
        student, _, _ = build_student(teacher, SwapParams(config=step.params.config), f"{path}: steps.0.swap")
        params[recipe.name] = sum(t.numel() for t in student.parameters())
        pt = out / f"{recipe.name}.pt"
        checkpoint.save(student.eval(), pt)
        files[recipe.name] = str(pt.with_suffix(".onnx"))
        export_onnx(str(pt), files[recipe.name])
    return files, params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="+")
    parser.add_argument("--base", default="models/hg2-128.pt")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        files, params = export_students(args.base, args.recipes, Path(tmp))
        result = bench_models(list(files.values()), batches=(1,), runs=args.runs, threads=args.threads, pair=True)
    print(f"{'recipe':<20} {'params':>10} {'MMACs':>8} {'p50 ms':>7} {'x faster':>8}")
    for name, row in zip(files, result.table.itertuples()):
        faster = 1 / row.ratio_median
        print(f"{name:<20} {params[name]:>10,} {row.gmacs * 1e3:>8.1f} {row.p50_ms:>7.3g} {faster:>7.2f}x")


if __name__ == "__main__":
    main()
