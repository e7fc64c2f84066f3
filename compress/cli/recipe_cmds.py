"""``hgc recipe check|ops``, ``hgc run``, ``hgc sweep``, ``hgc report`` and ``hgc archive``.

Thin wrappers: each parses, calls one function (sweep, recipe, report, archive), prints.
"""
from __future__ import annotations

import argparse

from compress.archive import archive_run
from compress.cli.common import command
from compress.recipe import catalog
from compress.report import build_report
from compress.sweep import check, run_sets, sweep, sweep_commands


def _run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="PATH=V1[,V2…]",
                   help="override a recipe setting (e.g. steps.0.finetune.steps=10,20); lists expand to one "
                        "run per value (cartesian product over several --set)")
    p.add_argument("--checkpoint", default=None, help="base checkpoint instead of the recipe's `base`")
    p.add_argument("--out", default="runs", help="directory that holds the run directories (default: runs)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (training and evaluation)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: training steps ×0.01 (min 2), 32 eval samples, 3 timed runs")


@command("recipe", "validate recipes (check) or list the registered ops and their parameters (ops)")
def _recipe(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    c = sub.add_parser("check", help="validate recipe files without running anything")
    c.add_argument("files", nargs="+")
    c.add_argument("--set", dest="sets", action="append", default=[], metavar="PATH=V1[,V2…]")
    c.add_argument("--checkpoint", default=None, help="base checkpoint instead of the recipe's `base`")
    sub.add_parser("ops", help="list the recipe ops, their parameters and defaults")

    def run(a: argparse.Namespace) -> int:
        if a.action == "check":
            for recipe in check(a.files, sets=a.sets, checkpoint=a.checkpoint):
                ops = " → ".join(s.op for s in recipe.steps) or "(no steps: export, evaluate, measure)"
                print(f"ok  {recipe.name}: {ops} (base {a.checkpoint or recipe.base}, data {recipe.data}, "
                      f"eval {recipe.eval_data()})")
            return 0
        print(f"  {'parameter':<18} {'type':<16} {'default':<12} {'allowed':<20} meaning")
        for section in catalog():
            print(f"{section['title']}: {section['doc']}")
            for row in section["params"]:
                print(f"  {row['name']:<18} {row['type']:<16} {str(row['default']):<12} {row['constraint']:<20} "
                      f"{row['doc']}".rstrip())
        return 0

    p.set_defaults(run=run)


@command("run", "run a recipe: steps, export, evaluation as exported, measurement, results.json")
def _run(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="recipe YAML file")
    _run_flags(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    def run(a: argparse.Namespace) -> int:
        results = run_sets(a.recipe, sets=a.sets, checkpoint=a.checkpoint, out=a.out, device=a.device,
                           quick=a.quick, progress=not a.no_progress, echo=lambda line: print(line, flush=True))
        for result in results:
            print(f"results: {result.results_path}")
        return 0

    p.set_defaults(run=run)


@command("sweep", "run many recipes (× --set expansions) as independent processes, N at a time")
def _sweep(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", help="recipe YAML files")
    p.add_argument("--jobs", "-j", type=int, default=1, help="processes at a time (default 1)")
    p.add_argument("--print", dest="print_only", action="store_true",
                   help="print one command line per run (for a cluster scheduler) instead of running")
    _run_flags(p)

    def run(a: argparse.Namespace) -> int:
        if a.print_only:
            print("\n".join(sweep_commands(a.files, sets=a.sets, checkpoint=a.checkpoint, out=a.out,
                                           device=a.device, quick=a.quick)))
            return 0
        outcomes = sweep(a.files, jobs=a.jobs, sets=a.sets, checkpoint=a.checkpoint, out=a.out, device=a.device,
                         quick=a.quick, echo=lambda line: print(line, flush=True))
        failed = [o for o in outcomes if o.returncode != 0]
        print(f"{len(outcomes) - len(failed)}/{len(outcomes)} runs succeeded")
        return 1 if failed else 0

    p.set_defaults(run=run)


@command("report", "pareto-front report (markdown, HTML, CSV, plots) from the results.json of many runs")
def _report(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="run directories or results.json files (searched recursively)")
    p.add_argument("-o", "--out", required=True, help="output directory, e.g. reports/NAME")
    p.add_argument("--max-drop", type=float, default=1.0,
                   help="name the smallest and fastest run within this PCKh drop of the baseline (default 1.0)")
    p.add_argument("--runtime", default=None,
                   help="keep only this runtime's rows (default: one row per run and runtime timed)")
    p.add_argument("--batch", type=int, default=None, help="batch size of the latency (default 1)")
    p.add_argument("--baseline", default=None, help="run name of the baseline (default: the run named "
                                                    "'baseline' or a run without steps)")
    p.add_argument("--side-by-side", type=int, nargs="?", const=50, default=0, metavar="ROUNDS",
                   help="re-time every row's file here, round-robin in one process (default 50 rounds), and use "
                        "those latencies: runs timed separately on a shared machine cannot be compared")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads of the side-by-side timing and the re-scoring (default 1)")
    p.add_argument("--rescore", action="store_true",
                   help="score here again the rows whose int8 or bf16 arithmetic differs on this CPU from the "
                        "machine that scored them (cached in OUT/rescored.json)")

    def run(a: argparse.Namespace) -> int:
        rep = build_report(a.runs, a.out, max_drop=a.max_drop, runtime=a.runtime, batch=a.batch,
                           baseline=a.baseline, side_by_side_rounds=a.side_by_side, threads=a.threads,
                           rescore=a.rescore)
        print(f"{rep.table.run.nunique()} runs, baseline {rep.baseline or '(none)'}, {len(rep.table)} (run, runtime) "
              f"rows on {', '.join(rep.runtimes) or 'no runtime'}, latency {rep.latency}")
        picks = [f"{k} {r or '-'}" + (f" on {rt}" if r and rt else "") for k, r, rt in
                 (("smallest", rep.smallest, rep.smallest_runtime), ("fastest", rep.fastest, rep.fastest_runtime))]
        print(f"within {a.max_drop:g} PCKh: {', '.join(picks)}")
        for note in rep.notes:
            print(f"note: {note}")
        print(f"wrote {', '.join(rep.files)}")
        return 0

    p.set_defaults(run=run)


@command("archive", "keep finished runs' report rows (results.json + evaluated artifact) for a report made later")
def _archive(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN", help="finished run directories, e.g. runs/prune/prune-50")
    p.add_argument("-o", "--out", required=True,
                   help="directory to keep them in, e.g. reports/runs (one directory for every report's rows)")
    p.add_argument("--checkpoint", action="store_true",
                   help="also keep the last step's model.pt (for hgc ship, or a later recipe's base)")

    def run(a: argparse.Namespace) -> int:
        for run_dir in a.runs:
            kept = archive_run(run_dir, a.out, checkpoint=a.checkpoint)
            what = "unchanged" if kept.unchanged else f"{len(kept.files)} files, {kept.bytes:,} bytes"
            print(f"{kept.path}: {what}")
        return 0

    p.set_defaults(run=run)
