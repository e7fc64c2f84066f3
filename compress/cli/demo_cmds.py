"""``hgc demo``: the standard suite on the shipped hg2-128 (or ``--checkpoint``), ending with the pareto report.

Thin wrapper: parses, calls ``compress.demo.run_demo``, prints its front table and the report's path.
"""
from __future__ import annotations

import argparse

from compress.cli.common import command
from compress.demo import run_demo


@command("demo", "the main job: compress hg2-128 (or --checkpoint) with the standard suite, then the pareto report")
def _demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default=None,
                   help="hourglass checkpoint to compress (default: models/hg2-128.pt of this checkout)")
    p.add_argument("--out", default="runs/demo", help="output directory: runs/, models/, report/ (default: runs/demo)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: training steps ×0.01 (min 2), 32 eval samples, 3 timed runs")
    p.add_argument("--jobs", "-j", type=int, default=2,
                   help="recipes at a time, each in its own process (default 2; 1: one after the other here)")
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op threads per recipe (default: the cores divided by --jobs, at least 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (step and recipe lines only)")

    def run(a: argparse.Namespace) -> int:
        result = run_demo(checkpoint=a.checkpoint, out=a.out, quick=a.quick, jobs=a.jobs, threads=a.threads,
                          progress=not a.no_progress, echo=lambda line: print(line, flush=True))
        print(result.summary)
        return 1 if result.failed else 0

    p.set_defaults(run=run)
