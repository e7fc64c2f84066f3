"""Sweeps: --set parsing and cartesian expansion, one command line per run, independent processes."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from compress.errors import HGCError
from compress.nets import checkpoint
from compress.nets.hourglass import StackedHourglass
from compress.sweep import _set_arg, expand, parse_sets, plan, split_values, sweep, sweep_commands

RECIPE = ("steps:\n  - finetune: {steps: 10, batch_size: 2, lr: 1.0e-3}\n"
          "evaluate: {limit: 4, batch_size: 4}\n"
          "measure: {runtimes: [onnxruntime-cpu], batch: [1], runs: 2, warmup: 0, threads: 1}\n")


@pytest.fixture
def files(tmp_path: Path, tiny_config) -> tuple[str, str]:
    ckpt = tmp_path / "base.pt"
    checkpoint.save(StackedHourglass(tiny_config), ckpt)
    recipe = tmp_path / "ft.yaml"
    recipe.write_text("name: ft\n" + RECIPE)
    return str(recipe), str(ckpt)


def test_values_split_at_top_level_commas_and_read_as_yaml() -> None:
    assert split_values("1,2,[3, 4],{a: 1, b: 2},'x,y'") == ["1", "2", "[3, 4]", "{a: 1, b: 2}", "'x,y'"]
    sets = parse_sets(["steps.0.finetune.steps=10,20", "steps.0.finetune.lr=1e-3,5.0e-4", "evaluate.flip=true"])
    assert sets == {"steps.0.finetune.steps": [10, 20], "steps.0.finetune.lr": ["1e-3", 5e-4],
                    "evaluate.flip": [True]}
    runs = expand(sets)
    assert len(runs) == 4 and runs[0] == {"steps.0.finetune.steps": 10, "steps.0.finetune.lr": "1e-3",
                                          "evaluate.flip": True}
    assert expand({}) == [{}]
    for bad in ("steps.0.finetune.steps", "=3"):
        with pytest.raises(HGCError, match="expected PATH=VALUE"):
            parse_sets([bad])


@pytest.mark.parametrize("value", [10, 1e-05, 0.5, True, None, "abc", "a, b", "10", "", [1, 8], {"alpha": 0.5}])
def test_set_arguments_read_back_exactly(value: object) -> None:
    path, values = next(iter(parse_sets([_set_arg("p", value)]).items()))
    assert path == "p" and values == [value]


def test_plan_names_runs_and_validates_everything_first(files: tuple[str, str], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    recipe, ckpt = files
    runs = plan([recipe], ["steps.0.finetune.steps=10,20"], checkpoint=ckpt)
    assert [r.name for _, _, r in runs] == ["ft@steps.0.finetune.steps=10", "ft@steps.0.finetune.steps=20"]
    assert [r.steps[0].params.steps for _, _, r in runs] == [10, 20]
    with pytest.raises(HGCError, match="--set steps.0.finetune.stpes: no such setting"):
        plan([recipe], ["steps.0.finetune.stpes=1"], checkpoint=ckpt)
    twin = tmp_path / "twin.yaml"
    twin.write_text("name: ft\n" + RECIPE)
    with pytest.raises(HGCError, match="run name 'ft' is also the name of a run from"):
        plan([recipe, str(twin)], checkpoint=ckpt)
    monkeypatch.chdir(tmp_path)  # the default base, models/hg2-128.pt, is relative: absent here
    with pytest.raises(HGCError, match="base: models/hg2-128.pt: no such checkpoint file"):
        plan([recipe])


def test_commands_are_one_line_per_run(files: tuple[str, str]) -> None:
    recipe, ckpt = files
    lines = sweep_commands([recipe], ["steps.0.finetune.steps=10,20", "steps.0.finetune.lr=1e-3,2e-3"],
                           checkpoint=ckpt, out="runs", quick=True)
    assert len(lines) == 4
    argv = shlex.split(lines[3])
    assert argv[1:5] == ["-m", "compress", "run", recipe] and "--quick" in argv
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    assert sets == ["steps.0.finetune.steps=20", "steps.0.finetune.lr=2e-3"]


def test_a_failing_run_is_reported_with_its_error_line(files: tuple[str, str], tmp_path: Path) -> None:
    recipe, _ = files
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(b"\x00" * 64)  # exists (passes planning), fails inside the run process
    lines: list[str] = []
    earlier = tmp_path / "runs" / "ft@steps.0.finetune.steps=1" / "run.log"
    earlier.parent.mkdir(parents=True)
    earlier.write_text("an earlier attempt's log\n")  # e.g. a run another sweep is still executing
    outcomes = sweep([recipe], jobs=2, sets=["steps.0.finetune.steps=1,2"], checkpoint=str(damaged),
                     out=str(tmp_path / "runs"), echo=lines.append)
    assert [o.returncode for o in outcomes] == [2, 2]
    logged = earlier.read_text().splitlines()  # appended to, never truncated; a header names the attempt
    assert logged[0] == "an earlier attempt's log" and logged[1].startswith("=== hgc sweep: ft@steps.0.finetune")
    assert all("damaged.pt" in o.last_line and "Traceback" not in o.last_line for o in outcomes)
    assert all("FAILED (exit 2)" in line for line in lines)
    with pytest.raises(HGCError, match="--jobs 0"):
        sweep([recipe], jobs=0)


@pytest.mark.slow
def test_sweep_runs_independent_processes(files: tuple[str, str], tmp_path: Path) -> None:
    recipe, ckpt = files
    out = tmp_path / "runs"
    lines: list[str] = []
    outcomes = sweep([recipe], jobs=2, sets=["steps.0.finetune.steps=200,300"], checkpoint=ckpt, out=str(out),
                     quick=True, echo=lines.append)
    assert [o.returncode for o in outcomes] == [0, 0], [o.last_line for o in outcomes]
    for name, steps in (("ft@steps.0.finetune.steps=200", 2), ("ft@steps.0.finetune.steps=300", 3)):
        row = json.loads((out / name / "results.json").read_text())
        assert row["quick"] is True and row["steps"][0]["metrics"]["steps"] == steps
        log = (out / name / "run.log").read_text()
        assert "final: " in log and f"{steps}/{steps} step (100%)" in log  # the child's progress, one line each
    assert len(lines) == 2 and all(": ok in " in line for line in lines)
