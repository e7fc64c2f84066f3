"""``hgc convert`` and ``hgc mpii-score``: thin wrappers over ``compress.nets.convert`` and ``compress.mpii_eval``."""
from __future__ import annotations

import argparse
import json

from compress.cli.common import command
from compress.mpii_eval import score_preds_mat
from compress.nets.convert import convert_checkpoint


@command("convert", "convert a princeton-vl or pytorch-pose hourglass checkpoint into an hgc checkpoint")
def _convert(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="the peer's checkpoint file (.pt / .pth.tar, or a bare state dict)")
    p.add_argument("--from", dest="source", required=True, choices=["princeton", "pytorch-pose"],
                   help="princeton: princeton-vl/pytorch_stacked_hourglass PoseNet; pytorch-pose: bearpaw HourglassNet")
    p.add_argument("-o", "--out", required=True, help="hgc checkpoint to write (.pt)")
    p.add_argument("--input-size", type=int, default=256, help="input resolution the peer was trained at")
    p.add_argument("--mean", type=float, nargs=3, default=None, metavar=("R", "G", "B"),
                   help="mean the peer subtracted from [0,1] RGB (default: princeton 0 0 0; "
                        "pytorch-pose its MPII mean 0.4404 0.4440 0.4327)")
    p.add_argument("--std", type=float, nargs=3, default=None, metavar=("R", "G", "B"),
                   help="std the peer divided by (default 1 1 1: neither peer divides)")

    def run(a: argparse.Namespace) -> int:
        result = convert_checkpoint(a.checkpoint, a.source, a.out, input_size=a.input_size, mean=a.mean, std=a.std)
        print(result.summary())
        print(f"input: {result.input_convention}")
        return 0

    p.set_defaults(run=run)


@command("mpii-score", "score an MPII predictions .mat with the official PCKh algorithm")
def _mpii_score(p: argparse.ArgumentParser) -> None:
    p.add_argument("preds", help="predictions: 'preds' (N×16×2) as hgc eval --preds writes, or 'pos_pred_src'")
    p.add_argument("--gt", required=True, help="official ground truth, e.g. detections_our_format.mat")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def run(a: argparse.Namespace) -> int:
        result = score_preds_mat(a.preds, a.gt)
        if a.json:
            print(json.dumps({"preds": a.preds, "gt": a.gt, **result.to_dict()}, indent=2))
        else:
            print(f"{a.preds} against {a.gt} (PCKh@0.5, official MPII semantics)")
            print(result.format_table())
        return 0

    p.set_defaults(run=run)
