"""``hgc recipe check|ops``, ``hgc run``, ``hgc sweep --print`` and ``hgc report`` from the command line."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from compress.cli import main
from compress.nets import checkpoint
from compress.nets.hourglass import StackedHourglass

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.fixture
def ckpt(tmp_path: Path, tiny_config) -> str:
    path = tmp_path / "tiny.pt"
    checkpoint.save(StackedHourglass(tiny_config), path)
    return str(path)


def _error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_ops_lists_parameters_and_defaults(capsys: pytest.CaptureFixture) -> None:
    assert main(["recipe", "ops"]) == 0
    text = capsys.readouterr().out
    assert "op finetune:" in text and "distill.alpha" in text and "one of adam, rmsprop" in text
    assert "section evaluate:" in text and "section measure:" in text and "onnxruntime-cpu" in text


def test_shipped_recipes_check(ckpt: str, capsys: pytest.CaptureFixture) -> None:
    files = sorted(str(p) for p in RECIPES.glob("*.yaml"))
    assert {Path(f).stem for f in files} >= {"baseline", "finetune", "distill-finetune"}
    assert main(["recipe", "check", *files, "--checkpoint", ckpt]) == 0
    assert capsys.readouterr().out.count("ok  ") == len(files)


@pytest.mark.parametrize("args, message", [
    (["--set", "steps.0.finetune.stpes=3"], "--set steps.0.finetune.stpes: no such setting"),
    (["--set", "steps.0.finetune.optimizer=sgd"], "steps[0].finetune.optimizer: 'sgd' is not one of adam, rmsprop"),
    (["--checkpoint", "missing.pt"], "--checkpoint: missing.pt: no such checkpoint file"),
    (["--device", "tpu"], "--device 'tpu'"),
])
def test_run_with_bad_input_writes_nothing(tmp_path: Path, ckpt: str, capsys: pytest.CaptureFixture,
                                           args: list[str], message: str) -> None:
    out = tmp_path / "runs"
    argv = ["run", str(RECIPES / "finetune.yaml"), "--out", str(out), "--checkpoint", ckpt, *args]
    assert main(argv) == 2
    assert message in _error_line(capsys)
    assert not out.exists()


def test_check_reports_a_typo(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - finetune: {stpes: 3}\n")
    assert main(["recipe", "check", str(bad)]) == 2
    assert _error_line(capsys).endswith("bad.yaml: steps[0].finetune: unknown key 'stpes' (did you mean 'steps'?)")


def test_run_quick_then_report(tmp_path: Path, ckpt: str, capsys: pytest.CaptureFixture) -> None:
    runs, report = tmp_path / "runs", tmp_path / "report"
    assert main(["run", str(RECIPES / "baseline.yaml"), "--checkpoint", ckpt, "--out", str(runs), "--quick",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "final: final/model.onnx" in printed and "results: " in printed
    row = json.loads((runs / "baseline" / "results.json").read_text())
    assert row["quick"] is True and row["evaluate"]["samples"] == 32 and row["latency"][0]["runs"] == 3
    assert main(["run", str(RECIPES / "baseline.yaml"), "--checkpoint", ckpt, "--out", str(runs), "--quick",
                 "--no-progress"]) == 0
    assert "final: skipped (unchanged)" in capsys.readouterr().out
    assert main(["report", str(runs), "-o", str(report), "--max-drop", "1.0"]) == 0
    printed = capsys.readouterr().out
    assert "1 runs, baseline baseline" in printed and "used --quick" in printed
    assert (report / "report.html").is_file() and (report / "pckh_vs_size.svg").is_file()
    assert main(["report", str(runs), "-o", str(tmp_path / "r2"), "--runtime", "torch-cpu", "--batch", "8"]) == 0


def test_report_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "-o", str(tmp_path / "out")]) == 2
    assert "no results.json found" in _error_line(capsys)
    (tmp_path / "runs" / "x").mkdir(parents=True)
    (tmp_path / "runs" / "x" / "results.json").write_text("{not json")
    assert main(["report", str(tmp_path / "runs"), "-o", str(tmp_path / "out")]) == 2
    assert "runs/x/results.json: corrupt results file" in _error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_sweep_print_gives_one_command_per_run(ckpt: str, capsys: pytest.CaptureFixture) -> None:
    files = [str(RECIPES / "finetune.yaml"), str(RECIPES / "distill-finetune.yaml")]
    assert main(["sweep", *files, "--checkpoint", ckpt, "--set", "steps.0.finetune.steps=100,200", "--print"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and all(" -m compress run " in line and "--checkpoint" in line for line in lines)
