"""Bytes of the packed file at each sparsity × k, in one shot, to choose a recipe's levels before training.

For each sparsity level the checkpoint's conv weights (heads excluded, as the recipes do) get global
magnitude masks (``sparsify``'s own ``magnitude_masks``); each layer's remaining non-zeros are then replaced
by at most k shared values (``cluster``'s own k-means, zeros kept as one of the k) and the model is written
as an ``.hgz`` by ``pack_model`` with the recipes' defaults. No training: the accuracy of these files is
meaningless, their bytes are what a trained run at the same levels stores (the trained run's weights sit
elsewhere, so its entropy coding differs by a few per cent; compare a landed run with its row here). Prints
one row per level: bytes, × against the baseline's fp32 ONNX file, non-zeros, and what the streams (indices,
positions) and the float block (codebooks, norms, biases, the heads) take. Usage::

    OMP_NUM_THREADS=1 python reports/size/size_map.py models/hg2-128-prune50.pt --sparsity 0.6 0.7 0.8 --k 8 16
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from compress.nets import checkpoint
from compress.nets.shared import unshare_weight
from compress.packed.model import pack_model
from compress.packed.stages import pack_sizes
from compress.techniques.cluster.tied import cluster_weight, tie
from compress.techniques.sparsify import apply_masks, magnitude_masks, sparse_layers

HEADS = ["stacks.*.score"]
BASELINE_ONNX = Path(__file__).resolve().parents[1] / "runs" / "baseline" / "final" / "model.onnx"


def share_values(model: torch.nn.Module, layers: list[str], k: int) -> None:
    """Each layer's weights replaced by at most ``k`` shared values, exact zeros kept (``cluster``'s own routines)."""
    modules = dict(model.named_modules())
    for name in layers:
        module = modules[name]
        tie(module, *cluster_weight(module.weight.detach().numpy(), k, "linear", 30, per_channel=False, seed=0))
        unshare_weight(module)


def packed_row(path: str, sparsity: float, k: int, out_dir: Path) -> dict[str, float]:
    """Mask, share and pack a fresh copy of the checkpoint at ``path``; the file's byte counts."""
    model, _ = checkpoint.load(path)
    layers = sparse_layers(model, exclude=HEADS)
    if sparsity > 0:
        apply_masks(model, magnitude_masks(model, layers, sparsity, "global"))
    share_values(model, layers, k)
    report = pack_model(model, out_dir / f"s{sparsity}-k{k}.hgz")
    sizes = pack_sizes(report.layers, report.block_bytes, report.bytes)
    return {"sparsity": sparsity, "k": k, "bytes": report.bytes, "nonzero": sizes["nonzero"],
            "stream_bytes": sizes["stream_bytes"], "float_block_bytes": sizes["float_block_bytes"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.7, 0.8, 0.9])
    parser.add_argument("--k", type=int, nargs="+", default=[16])
    parser.add_argument("--baseline", default=str(BASELINE_ONNX), help="the baseline's fp32 ONNX file")
    args = parser.parse_args()
    if min(args.k) < 2 or not all(0 <= s < 1 for s in args.sparsity):
        parser.error("--k values must be ≥ 2 and --sparsity values in [0, 1)")
    torch.set_num_threads(1)
    base_bytes = Path(args.baseline).stat().st_size
    print(f"{args.checkpoint}: × against {args.baseline} ({base_bytes:,} B)")
    print(f"{'sparsity':>8} {'k':>4} {'bytes':>10} {'×':>7} {'non-zeros':>10} {'streams':>9} {'floats':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for sparsity in args.sparsity:
            for k in args.k:
                row = packed_row(args.checkpoint, sparsity, k, Path(tmp))
                print(f"{sparsity:>8.2f} {k:>4} {row['bytes']:>10,} {base_bytes / row['bytes']:>6.2f}× "
                      f"{row['nonzero']:>10,} {row['stream_bytes']:>9,} {row['float_block_bytes']:>8,}")


if __name__ == "__main__":
    main()
