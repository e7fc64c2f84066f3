"""Sweeps: ``--set path=v1,v2`` expands to the cartesian product of runs; many runs fan out as processes.

Each expanded run is one independent ``python -m compress run RECIPE --set path=value …`` with its own
run directory, so a local pool (``sweep(..., jobs=N)``) and a cluster scheduler (one line per run from
``sweep_commands``) do exactly the same work.
"""
from __future__ import annotations

import datetime
import itertools
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from compress.errors import HGCError
from compress.recipe import Recipe, check_inputs, load_recipe
from compress.runner import run_recipe

Echo = Callable[[str], None]


def split_values(text: str) -> list[str]:
    """Split ``v1,v2`` at top-level commas (not inside ``[]``, ``{}`` or quotes).

    So list and mapping values (``measure.batch=[1,8]``) can be set, not only scalars.
    """
    parts, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def parse_sets(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["steps.0.finetune.steps=10,20"]`` → ``{"steps.0.finetune.steps": [10, 20]}``.

    Values are read with ``yaml.safe_load`` so they have the same types as in a recipe file.
    """
    sets: dict[str, list[Any]] = {}
    for item in items:
        path, eq, text = item.partition("=")
        if not eq or not path.strip():
            raise HGCError(f"--set {item!r}: expected PATH=VALUE[,VALUE…], e.g. steps.0.finetune.steps=10,20")
        values = []
        for raw in split_values(text):
            try:
                values.append(yaml.safe_load(raw) if raw.strip() else "")
            except yaml.YAMLError:
                raise HGCError(f"--set {path}: cannot read the value {raw!r}") from None
        sets[path.strip()] = values
    return sets


def expand(sets: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Cartesian product of the value lists: one override mapping per run (``[{}]`` when there are none).

    Several ``--set`` flags with several values each describe a grid; this lists its points.
    """
    keys = list(sets)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(sets[k] for k in keys))]


def plan(paths: Sequence[str], sets: Sequence[str] = (), checkpoint: str | None = None
         ) -> list[tuple[str, dict[str, Any], Recipe]]:
    """Every (recipe file, overrides, validated recipe) of a sweep; all validated before anything runs.

    Validation covers the schema, the ``--set`` paths, unique run names and the input checkpoints.
    """
    expanded = expand(parse_sets(sets))
    runs = [(str(p), o, load_recipe(p, o or None)) for p in paths for o in expanded]
    if not runs:
        raise HGCError("sweep: no recipe files given")
    seen: dict[str, str] = {}
    for path, _, recipe in runs:
        if recipe.name in seen:
            raise HGCError(f"{path}: run name {recipe.name!r} is also the name of a run from {seen[recipe.name]}; "
                           "runs must have distinct names (set `name:`)")
        seen[recipe.name] = path
    for _, _, recipe in runs:
        check_inputs(recipe, checkpoint)
    return runs


def run_sets(path: str, sets: Sequence[str] = (), checkpoint: str | None = None, out: str = "runs",
             device: str = "cpu", quick: bool = False, progress: bool = True, echo: Echo | None = None) -> list[Any]:
    """``hgc run``: every expansion of one recipe, one after the other in this process (a RunResult each).

    All expansions are validated before the first one starts.
    """
    runs = [recipe for _, _, recipe in plan([path], sets, checkpoint)]
    results = []
    for recipe in runs:
        if len(runs) > 1 and echo:
            echo(f"== {recipe.name}")
        results.append(run_recipe(recipe, checkpoint=checkpoint, out=out, device=device, quick=quick,
                                  progress=progress, echo=echo))
    return results


def _set_arg(path: str, value: Any) -> str:
    """A ``--set`` argument that reads back as exactly ``value`` (YAML flow style; odd strings quoted)."""
    if isinstance(value, str):
        plain = _reads_back(value) and not any(c in value for c in ",[]{}'\"")
        return f"{path}={value if plain else json.dumps(value)}"
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return f"{path}={text.removesuffix('...').strip()}"


def _reads_back(text: str) -> bool:
    try:
        return yaml.safe_load(text) == text
    except yaml.YAMLError:
        return False


def run_command(path: str, overrides: dict[str, Any], checkpoint: str | None = None, out: str = "runs",
                device: str = "cpu", quick: bool = False) -> list[str]:
    """The argv of one run as an independent process, each override a single ``--set path=value``.

    Local sweeps and cluster schedulers run exactly this command, so both do the same work.
    """
    argv = [sys.executable, "-m", "compress", "run", path, "--out", out, "--device", device]
    for key, value in overrides.items():
        argv += ["--set", _set_arg(key, value)]
    if checkpoint:
        argv += ["--checkpoint", checkpoint]
    if quick:
        argv.append("--quick")
    return argv


def sweep_commands(paths: Sequence[str], sets: Sequence[str] = (), checkpoint: str | None = None,
                   out: str = "runs", device: str = "cpu", quick: bool = False) -> list[str]:
    """One shell command line per run of the sweep (validated first).

    ``hgc sweep --print`` shows them, one per line, for any scheduler to fan out.
    """
    return [shlex.join(run_command(p, o, checkpoint, out, device, quick))
            for p, o, _ in plan(paths, sets, checkpoint)]


@dataclass
class JobOutcome:
    """One finished process of a sweep: its run name, exit code, duration and log file."""

    name: str
    returncode: int
    seconds: float
    log: str
    last_line: str = ""


def sweep(paths: Sequence[str], jobs: int = 1, sets: Sequence[str] = (), checkpoint: str | None = None,
          out: str = "runs", device: str = "cpu", quick: bool = False, echo: Echo | None = None) -> list[JobOutcome]:
    """Run every recipe × ``--set`` expansion as its own process, ``jobs`` at a time.

    Everything is validated before the first process starts; each process appends to ``<out>/<name>/run.log``
    (a streaming log, one header line per attempt, never truncated: a second sweep must not wipe the log of a
    run that is still going).
    """
    if jobs < 1:
        raise HGCError(f"--jobs {jobs}: must be ≥ 1")
    runs = plan(paths, sets, checkpoint)

    def one(item: tuple[str, dict[str, Any], Recipe]) -> JobOutcome:
        path, overrides, recipe = item
        run_dir = Path(out) / recipe.name
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise HGCError(f"--out {out}: cannot create the run directory {run_dir} (a path on the way is a file)") \
                from None
        log = run_dir / "run.log"
        started = time.perf_counter()
        # Deliberately appended to, not written atomically: run.log is a streaming log the child writes while
        # it runs, and the file is opened before the child takes the run lock, so "w" would truncate the log
        # of a run another sweep is still executing. Each attempt starts with a header line.
        with open(log, "a") as handle:
            handle.write(f"=== hgc sweep: {recipe.name} started {datetime.datetime.now().isoformat(timespec='seconds')}"
                         f" (pid {os.getpid()}) ===\n")
            handle.flush()
            # Progress on: not being a terminal, each bar writes one line per 10 % with its ETA (progress.py).
            done = subprocess.run(run_command(path, overrides, checkpoint, out, device, quick),
                                  stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False)
        lines = log.read_text(errors="replace").strip().splitlines()
        outcome = JobOutcome(recipe.name, done.returncode, time.perf_counter() - started, str(log),
                             lines[-1] if lines else "")
        if echo:
            state = "ok" if done.returncode == 0 else f"FAILED (exit {done.returncode}): {outcome.last_line}"
            echo(f"{recipe.name}: {state} in {outcome.seconds:.1f}s (log {log})")
        return outcome

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, runs))



def check(paths: Sequence[str], sets: Sequence[str] = (), checkpoint: str | None = None) -> list[Recipe]:
    """``hgc recipe check``: validate recipes (every ``--set`` expansion) and their input files.

    Runs nothing and writes nothing, so it is safe to call before submitting a sweep.
    """
    return [recipe for _, _, recipe in plan(paths, sets, checkpoint)]
