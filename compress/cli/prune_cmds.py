"""``hgc prune``: print a structured-pruning plan, or apply it one-shot (``compress.techniques.prune``)."""
from __future__ import annotations

import argparse

from compress.cli.common import command
from compress.errors import HGCError
from compress.techniques.prune import format_plan, prune_checkpoint
from compress.techniques.prune.config import HEADS, IMPORTANCES, SCOPES, TARGETS


@command("prune", "structured channel pruning: print the per-layer plan (--plan) or write the pruned model (-o)")
def _prune(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="checkpoint .pt")
    p.add_argument("--plan", action="store_true", help="print every layer's channels and MACs before/after")
    p.add_argument("-o", "--out", default=None, help="write the one-shot pruned checkpoint here (no fine-tuning)")
    p.add_argument("--ratio", type=float, default=None, help="share of the target to remove, in (0, 1)")
    p.add_argument("--target", choices=TARGETS, default=None, help="what --ratio is a share of")
    p.add_argument("--importance", choices=IMPORTANCES, default=None)
    p.add_argument("--p", type=int, choices=(1, 2), default=None, help="magnitude norm (1: L1, 2: L2)")
    p.add_argument("--scope", choices=SCOPES, default=None)
    p.add_argument("--max-ratio", type=float, default=None, help="the most any one layer may lose")
    p.add_argument("--round-to", type=int, default=None, help="kept channel counts are multiples of this")
    p.add_argument("--heads", choices=HEADS, default=None)
    p.add_argument("--exclude", nargs="+", default=None, metavar="PATTERN", help="layers that keep every weight")
    p.add_argument("--data", default="synthetic", help="training data for taylor gradients and export parity")

    def run(a: argparse.Namespace) -> int:
        if not a.plan and a.out is None:
            raise HGCError("prune: give --plan (print the plan) and/or -o OUT (write the pruned checkpoint)")
        settings = {k: v for k, v in (("ratio", a.ratio), ("target", a.target), ("importance", a.importance),
                                      ("p", a.p), ("scope", a.scope), ("max_ratio", a.max_ratio),
                                      ("round_to", a.round_to), ("heads", a.heads), ("exclude", a.exclude))
                    if v is not None}
        plan = prune_checkpoint(a.model, a.out, data=a.data, **settings)
        text = format_plan(plan, every_row=True) if a.plan else "\n".join(format_plan(plan).splitlines()[-3:])
        print(text)
        if a.out:
            print(f"wrote {a.out} (forward pass and ONNX parity checked; not fine-tuned)")
        return 0

    p.set_defaults(run=run)
