"""``hgc demo``: the main job — the standard suite of recipes on one checkpoint, then the pareto report.

The suite is the recipe files in ``recipes/demo/`` (demo-sized budgets; each file states its budget and
measured wall). Every recipe goes through ``compress.runner.run_recipe``, so finished steps are skipped and
an interrupted one resumes: Ctrl-C and the same command again continue where it stopped. Output::

    OUT/runs/<recipe>/     the runs (steps, final/ with the evaluated artifact, results.json)
    OUT/models/            a copy of every run's artifact (fp32/fp16/int8 ONNX, packed .hgz)
    OUT/report/            compress.report.build_report: report.md/.html, results.csv, plots
    OUT/demo.json          what ran: checkpoint, suite, per-recipe outcome and seconds
"""
from __future__ import annotations

import io
import math
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from compress.errors import HGCError, first_line
from compress.io import atomic_path, sha256_file
from compress.progress import LineProgress, NoProgress
from compress.recipe import load_recipe
from compress.report import Report, build_report, display_table
from compress.rundir import RunLock, write_json
from compress.runner import RunResult, preflight, run_recipe
from compress.sweep import check

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = REPO / "models" / "hg2-128.pt"
SUITE_DIR = REPO / "recipes" / "demo"
# run order: the longest first, so two at a time finish together
SUITE = ("prune-int8-qat", "swap-dws", "sparsify-cluster-pack", "prune", "int8-qat", "int8-ptq-mixed", "fp16",
         "baseline")
BASELINE = "demo-baseline"
MAX_DROP = 1.0
Echo = Callable[[str], None]


@dataclass
class DemoResult:
    """What ``run_demo`` did: the runs, the failures, the copied models and the report."""

    out: str
    checkpoint: str
    quick: bool
    jobs: int
    threads: int
    runs: list[RunResult] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # run name → the error's first line
    models: list[str] = field(default_factory=list)
    report: Report | None = None
    report_path: str = ""
    seconds: float = 0.0
    summary: str = ""  # the front table printed at the end


@dataclass
class _Task:
    index: int
    total: int
    path: str
    checkpoint: str
    runs_dir: str
    quick: bool
    progress: bool
    verbose: bool


@dataclass
class _Outcome:
    index: int
    name: str
    result: RunResult | None
    error: str | None
    seconds: float


def default_checkpoint() -> str:
    """``models/hg2-128.pt`` of the repository checkout this package runs from, or an error saying what to pass."""
    if not DEFAULT_CHECKPOINT.is_file():
        raise HGCError(f"{DEFAULT_CHECKPOINT}: the demo's default checkpoint is not there (an installed package has "
                       "no models/ directory); pass --checkpoint PATH")
    return str(DEFAULT_CHECKPOINT)


def suite_files() -> list[str]:
    """The demo's recipe files, in run order; an error naming the first one that is missing."""
    paths = [SUITE_DIR / f"{name}.yaml" for name in SUITE]
    for path in paths:
        if not path.is_file():
            raise HGCError(f"{path}: demo recipe not found (run hgc demo from a repository checkout)")
    return [str(p) for p in paths]


def check_out_dir(out: str) -> None:
    """Fail unless ``out`` is, or can become, a writable directory; leaves nothing behind.

    A temporary file is created and removed in ``out`` or its nearest existing ancestor (permissions, read-only
    mounts, /proc), so the demo never stops on a permission error after its first hour.
    """
    path = Path(out).absolute()
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise HGCError(f"--out {out}: {probe} is a file, not a directory")
    try:
        tempfile.TemporaryFile(dir=probe).close()
    except OSError as exc:
        raise HGCError(f"--out {out}: {probe} is not writable ({exc.strerror or first_line(exc)})") from None


def run_demo(checkpoint: str | None = None, out: str = "runs/demo", quick: bool = False, jobs: int = 2,
             threads: int | None = None, progress: bool = True, echo: Echo | None = None) -> DemoResult:
    """Run the demo suite on ``checkpoint`` (default: the shipped hg2-128) into ``out`` and write the report.

    ``jobs`` recipes run at a time, each in its own process with ``threads`` intra-op threads (default: the
    cores shared out, at least one), which prints its tagged lines to stdout; ``jobs=1`` runs them one after
    the other in this process, its lines through ``echo``. ``quick``
    is the runner's smoke budget. Everything is checked before anything is written: the checkpoint loads
    as an hourglass, every recipe validates, ``out`` is writable and no other demo holds its lock.
    A recipe that fails is reported in ``failed`` and the others still run; the report covers the rest.
    """
    started = time.perf_counter()
    say = echo or (lambda _line: None)
    if jobs < 1:
        raise HGCError(f"--jobs {jobs}: must be ≥ 1")
    if threads is not None and threads < 1:
        raise HGCError(f"--threads {threads}: must be ≥ 1")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = threads or max(1, cores // jobs)
    base = os.path.abspath(checkpoint) if checkpoint else default_checkpoint()
    paths = suite_files()
    for recipe in check(paths, checkpoint=base):  # schema, names, input files
        preflight(recipe, base, "cpu")  # the checkpoint loads as an hourglass, the runtimes exist
    check_out_dir(out)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    result = DemoResult(out=str(root), checkpoint=base, quick=quick, jobs=jobs, threads=threads)
    with RunLock(root):
        say(f"hgc demo: {len(paths)} recipes on {base} → {root} ({jobs} at a time, {threads} thread(s) each"
            f"{', --quick' if quick else ''})")
        tasks = [_Task(i + 1, len(paths), p, base, str(root / "runs"), quick, progress, echo is not None)
                 for i, p in enumerate(paths)]
        outcomes = _run_all(tasks, jobs, threads, echo)
        for outcome in outcomes:
            if outcome.result is not None:
                result.runs.append(outcome.result)
            else:
                result.failed[outcome.name] = outcome.error or "failed"
        result.models = _copy_models(result.runs, root / "models")
        if result.runs:
            result.report = build_report([r.dir for r in result.runs], str(root / "report"), max_drop=MAX_DROP,
                                         baseline=BASELINE if any(r.name == BASELINE for r in result.runs) else None)
            result.report_path = str(root / "report" / "report.md")
        result.seconds = time.perf_counter() - started
        write_json(root / "demo.json", _record(result, outcomes))
        result.summary = front_summary(result)
    return result


def _run_all(tasks: list[_Task], jobs: int, threads: int, echo: Echo | None) -> list[_Outcome]:
    """Every task, ``jobs`` at a time; a line per finished recipe with the suite's ETA."""
    bar: Any = LineProgress(len(tasks), desc="demo", unit="recipes", stream=_Lines(echo)) if echo else NoProgress()
    outcomes: list[_Outcome] = []
    if jobs == 1:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            for task in tasks:
                outcomes.append(_run_task(task, echo))
                bar.update()
        finally:
            torch.set_num_threads(previous)
        return outcomes
    context = multiprocessing.get_context("spawn")  # fork after torch's thread pools start can deadlock
    pids = context.SimpleQueue()
    stoppable = signal.getsignal(signal.SIGINT) is not signal.SIG_IGN  # a background job ignores Ctrl-C: so do they
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=context, initializer=_worker_init,
                               initargs=(threads, pids, stoppable))
    try:
        futures = {pool.submit(_run_task, task, None, True): task for task in tasks}
        for future in as_completed(futures):
            task = futures[future]
            try:
                outcomes.append(future.result())
            except BrokenProcessPool as exc:  # a worker died (killed, out of memory): the others cannot go on
                outcomes.append(_Outcome(task.index, Path(task.path).stem, None,
                                         f"worker process died: {first_line(exc)}", 0.0))
            bar.update()
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        _interrupt_workers(pids)
        pool.shutdown(wait=True)  # the workers unwind; the demo's lock is held until they have
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return sorted(outcomes, key=lambda o: o.index)


_STOPPED = False  # in a pool worker: interrupted once, so it starts no further recipe
_BUSY = False  # in a pool worker: a recipe is running (an idle worker must not die of a KeyboardInterrupt)


def _worker_init(threads: int, pids: Any, stoppable: bool) -> None:
    """Pool worker set-up: intra-op threads, its pid for the parent, and Ctrl-C meaning "stop" (``_on_sigint``)."""
    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, _on_sigint if stoppable else signal.SIG_IGN)
    pids.put(os.getpid())


def _on_sigint(_signum: int, _frame: Any) -> None:
    """The first SIGINT interrupts the running recipe (the runner unwinds: run lock released, step resumable);
    later ones (the terminal's and the parent's) are ignored, and queued recipes are not started."""
    global _STOPPED
    first, _STOPPED = not _STOPPED, True
    if first and _BUSY:
        raise KeyboardInterrupt


def _interrupt_workers(pids: Any) -> None:
    """SIGINT every pool worker (a terminal's Ctrl-C reached them already; a signal to the parent alone did not).

    The runner unwinds on KeyboardInterrupt (run locks released, steps resumable), as in a single process.
    """
    while not pids.empty():
        try:
            os.kill(pids.get(), signal.SIGINT)
        except ProcessLookupError:
            pass


class _Lines(io.TextIOBase):
    """A text stream handing each complete non-blank line to ``emit``; not a terminal, so progress is plain lines."""

    def __init__(self, emit: Echo) -> None:
        self.emit, self.pending = emit, ""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        lines = (self.pending + text).split("\n")
        self.pending = lines.pop()
        for line in lines:
            if line.strip():
                self.emit(line.rstrip())
        return len(text)


def _run_task(task: _Task, echo: Echo | None = None, worker: bool = False) -> _Outcome:
    """Run one recipe of the suite (in this process or a pool worker); errors become the outcome's one line.

    In a pool ``worker`` the lines go to the process's stdout tagged ``[i/N name]``, and stderr is tagged too,
    so progress bars become occasional lines instead of two processes fighting over one terminal.
    """
    global _BUSY
    recipe = load_recipe(task.path)
    if worker and _STOPPED:
        return _Outcome(task.index, recipe.name, None, "interrupted", 0.0)
    tag = f"[{task.index}/{task.total} {recipe.name}]"
    say: Echo = (lambda _line: None) if not task.verbose else echo or (lambda line: print(line, flush=True))
    saved = sys.stderr
    if worker:
        sys.stderr = _Lines(lambda line: print(f"{tag} {line}", file=sys.__stderr__, flush=True))
    started = time.perf_counter()
    try:
        _BUSY = worker
        ops = " → ".join(s.op for s in recipe.steps) or "export, evaluate, time"
        say(f"{tag} {ops}: {recipe.description}")
        run = run_recipe(recipe, checkpoint=task.checkpoint, out=task.runs_dir, quick=task.quick,
                         progress=task.progress, echo=lambda line: say(f"{tag} {line}"))
        seconds = time.perf_counter() - started
        ran = sum(s.status != "skipped" for s in run.steps)
        say(f"{tag} finished in {seconds:.0f}s ({ran} stage(s) ran, {len(run.steps) - ran} skipped as done)")
        return _Outcome(task.index, recipe.name, run, None, seconds)
    except KeyboardInterrupt:
        if not worker:
            raise
        say(f"{tag} interrupted")
        return _Outcome(task.index, recipe.name, None, "interrupted", time.perf_counter() - started)
    except Exception as exc:  # noqa: BLE001 — one recipe failing must not stop the suite; the line is reported
        line = first_line(exc) if isinstance(exc, HGCError) else f"{type(exc).__name__}: {first_line(exc)}"
        say(f"{tag} FAILED: {line}")
        return _Outcome(task.index, recipe.name, None, line, time.perf_counter() - started)
    finally:
        _BUSY = False
        sys.stderr = saved


def _copy_models(runs: Sequence[RunResult], folder: Path) -> list[str]:
    """Copy each run's artifact to ``folder/<run><suffixes>`` (e.g. ``demo-int8-qat.int8.onnx``), atomically.

    Copies, not links: a later rerun of a step replaces its files, and the copy must keep naming what the report
    measured until the next demo copies again. Unchanged files are not rewritten.
    """
    folder.mkdir(parents=True, exist_ok=True)
    copied = []
    for run in runs:
        artifact = Path(run.dir) / str(run.results.get("artifact", {}).get("path", ""))
        if not artifact.is_file():
            continue
        suffix = artifact.name[artifact.name.index("."):] if "." in artifact.name else ""
        target = folder / f"{run.name}{suffix}"
        if not (target.is_file() and sha256_file(target) == sha256_file(artifact)):
            with atomic_path(target) as tmp:
                shutil.copyfile(artifact, tmp)
        copied.append(str(target))
    return copied


def _record(result: DemoResult, outcomes: Sequence[_Outcome]) -> dict[str, Any]:
    """``demo.json``: the checkpoint, the settings, each recipe's outcome and seconds, the wall."""
    return {"checkpoint": result.checkpoint, "checkpoint_sha256": sha256_file(result.checkpoint),
            "quick": result.quick, "jobs": result.jobs, "threads": result.threads, "suite": list(SUITE),
            "recipes": [{"name": o.name, "seconds": round(o.seconds, 1), "error": o.error,
                         "stages": [{"op": s.op, "status": s.status, "seconds": round(s.seconds, 1)}
                                    for s in (o.result.steps if o.result else [])]} for o in outcomes],
            "models": result.models, "report": result.report_path, "seconds": round(result.seconds, 1)}


def front_summary(result: DemoResult) -> str:
    """The closing text: smallest and fastest within ``MAX_DROP`` PCKh, every run with its front, paths."""
    lines = []
    rep = result.report
    if rep is not None:
        table = rep.table
        reference = rep.baseline or "the most accurate run"
        lines.append(f"Within {MAX_DROP:g} PCKh@0.5 of {reference}:")
        for label, run, runtime in (("smallest", rep.smallest, rep.smallest_runtime),
                                    ("fastest", rep.fastest, rep.fastest_runtime)):
            lines.append(f"  {label}: {_pick(table, run, runtime, label)}")
        shown = display_table(table)
        keep = ["run", "precision (executed)", "PCKh@0.5", "ΔPCKh", "MB", "×smaller", "p50 ms", "×faster", "front"]
        lines += ["", *_text_table(shown[[c for c in keep if c in shown.columns]]), ""]
        lines += [f"note: {note}" for note in rep.notes]
    for name, error in result.failed.items():
        lines.append(f"FAILED {name}: {error}")
    if result.models:
        lines.append(f"models (copied): {Path(result.out) / 'models'} ({len(result.models)} files)")
    lines.append(f"report: {result.report_path or '(none: no recipe finished)'}")
    return "\n".join(lines)


def _text_table(frame: Any) -> list[str]:
    """Aligned plain-text rows: names and the front column left-aligned, numbers right-aligned."""
    rows = [list(map(str, frame.columns))] + [[str(v) for v in row] for row in frame.values]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    left = {0, 1, len(widths) - 1}
    return ["  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in rows]


def _pick(table: Any, run: str | None, runtime: str | None, label: str) -> str:
    if run is None:
        return "none"
    rows = table[(table.run == run) & ((table.runtime == runtime) if runtime else True)]
    if rows.empty:
        return run
    r = rows.iloc[0]
    ratio = r.x_smaller if label == "smallest" else r.x_faster
    word = "smaller" if label == "smallest" else "faster"
    parts = [f"{run} ({r.precision}) {r.bytes / 1e6:.3f} MB", f"{r.latency_ms:.3g} ms on {runtime}" if runtime else "",
             f"PCKh@0.5 {r.pckh:.2f}" + (f" ({r.d_pckh:+.2f})" if math.isfinite(r.d_pckh) else ""),
             f"{ratio:.2f}× {word}" if math.isfinite(ratio) else ""]
    return ", ".join(p for p in parts if p)
