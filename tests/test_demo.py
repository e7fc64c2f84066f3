"""``hgc demo``: the suite validates, bad input is one line before anything is written, and the real quick
demo runs end to end (report, models) and resumes by skipping every finished step."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from compress import demo
from compress.cli import main
from compress.errors import HGCError
from compress.sweep import check

REPO = Path(__file__).resolve().parents[1]
SMALL = REPO / "models" / "hg1-32.pt"


def test_suite_is_the_demo_directory_and_validates() -> None:
    files = demo.suite_files()
    assert sorted(Path(f).name for f in files) == sorted(p.name for p in demo.SUITE_DIR.glob("*.yaml"))
    recipes = {r.name: r for r in check(files, checkpoint=demo.default_checkpoint())}
    assert len(recipes) == len(demo.SUITE) and all(name.startswith("demo-") for name in recipes)
    ops = {name: [s.op for s in r.steps] for name, r in recipes.items()}
    assert ops["demo-baseline"] == []
    assert ops["demo-swap-dws"] == ["swap"] and recipes["demo-swap-dws"].steps[0].params.config == {"block": "dws"}
    assert ops["demo-prune"] == ["prune"]
    assert ops["demo-sparsify-cluster-pack"] == ["sparsify", "cluster", "pack"]
    assert ops["demo-prune-int8-qat"] == ["prune", "quantize"]
    quant = {name: r.steps[-1].params for name, r in recipes.items() if ops[name] and ops[name][-1] == "quantize"}
    assert quant["demo-fp16"].precision == "fp16"
    assert quant["demo-int8-qat"].qat is not None and quant["demo-prune-int8-qat"].qat is not None
    assert quant["demo-int8-ptq-mixed"].qat is None and quant["demo-int8-ptq-mixed"].exclude  # fp32 + int8 mixed
    for path in files:  # every file states its budget and what it measured
        text = Path(path).read_text()
        assert "Budget:" in text and "Measured:" in text, path


def test_missing_checkpoint_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(HGCError, match="no such checkpoint file"):
        demo.run_demo(checkpoint=str(tmp_path / "nope.pt"), out=str(out))
    assert not out.exists()


def test_not_an_hourglass_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(HGCError, match="not an hgc checkpoint"):
        demo.run_demo(checkpoint=str(tmp_path / "other.pt"), out=str(out))
    (tmp_path / "notes.txt").write_text("hi\n")
    with pytest.raises(HGCError, match="not a readable checkpoint"):
        demo.run_demo(checkpoint=str(tmp_path / "notes.txt"), out=str(out))
    assert not out.exists()


def test_unwritable_out_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(HGCError, match="is a file, not a directory"):
        demo.run_demo(out=str(tmp_path / "file" / "out"))
    if not Path("/proc").is_dir():
        pytest.skip("no /proc on this system")
    with pytest.raises(HGCError, match="not writable"):  # refused even for root
        demo.run_demo(out="/proc/hgc-demo-out")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only directory")
def test_read_only_out_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    with pytest.raises(HGCError, match="not writable"):
        demo.run_demo(out=str(locked / "out"))


def test_second_demo_on_the_same_out_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    lock = out / ".lock"
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))  # a live demo holds it
    with pytest.raises(HGCError, match="in use by pid"):
        demo.run_demo(out=str(out))
    assert sorted(p.name for p in out.iterdir()) == [".lock"] and lock.is_file()


def test_cli_bad_input_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hgc demo: error: --checkpoint") and not (tmp_path / "o").exists()
    assert main(["demo", "--jobs", "0", "--out", str(tmp_path / "o")]) == 2


def test_default_checkpoint_missing_says_pass_checkpoint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(demo, "DEFAULT_CHECKPOINT", tmp_path / "models" / "hg2-128.pt")
    with pytest.raises(HGCError, match="pass --checkpoint PATH"):
        demo.run_demo(out=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The real ``hgc demo --quick`` (two recipes at a time), as a user runs it, on the shipped small model
    (the default ``hg2-128`` takes twice as long for the same code paths; its resolution is tested above)."""
    out = tmp_path_factory.mktemp("demo") / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "compress", "demo", "--quick", "--checkpoint", str(SMALL), "--out", str(out),
               "--jobs", "2"]
    done = subprocess.run(command,
                          capture_output=True, text=True, cwd=REPO, env=env, check=False)
    return out, done


def test_quick_demo_runs_the_suite_and_writes_the_report(quick_demo: tuple[Path, subprocess.CompletedProcess[str]]
                                                         ) -> None:
    out, done = quick_demo
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads((out / "demo.json").read_text())
    names = [r["name"] for r in record["recipes"]]
    assert names == [f"demo-{n}" for n in demo.SUITE] and not any(r["error"] for r in record["recipes"])
    assert record["quick"] is True
    for name in names:
        results = json.loads((out / "runs" / name / "results.json").read_text())
        assert results["quick"] is True and results["base"] == str(SMALL)
    models = sorted(p.name for p in (out / "models").iterdir())
    assert len(models) == len(names) and "demo-sparsify-cluster-pack.hgz" in models
    assert "demo-int8-qat.int8.onnx" in models and "demo-fp16.fp16.onnx" in models
    for name in ("report.md", "report.html", "results.csv", "pckh_vs_latency.png", "pckh_vs_size.png"):
        assert (out / "report" / name).is_file()
    text = done.stdout
    assert f"demo: {len(names)}/{len(names)} recipes" in text  # the suite's progress line with its ETA
    assert f"[2/{len(names)} demo-swap-dws] 00-swap: done" in text  # the runner's step lines, tagged
    assert "Within 1 PCKh@0.5 of demo-baseline:" in text and "smallest:" in text and "fastest:" in text
    assert text.strip().splitlines()[-1] == f"report: {out / 'report' / 'report.md'}"


def test_quick_demo_rerun_skips_every_finished_step(quick_demo: tuple[Path, subprocess.CompletedProcess[str]]
                                                    ) -> None:
    out, done = quick_demo
    assert done.returncode == 0
    finished = {p: json.loads(p.read_text())["finished"] for p in out.glob("runs/*/*/done.json")}
    again = demo.run_demo(checkpoint=str(SMALL), out=str(out), quick=True, jobs=1, progress=False)
    assert not again.failed and len(again.runs) == len(demo.SUITE)
    assert {s.status for run in again.runs for s in run.steps} == {"skipped"}
    assert {p: json.loads(p.read_text())["finished"] for p in out.glob("runs/*/*/done.json")} == finished
    assert again.report_path and Path(again.report_path).is_file()


@pytest.mark.slow
def test_full_demo(tmp_path: Path) -> None:
    """The whole demo (about half an hour on 2 cores): every recipe finishes and the report names its picks."""
    result = demo.run_demo(out=str(tmp_path / "out"), progress=False)
    assert not result.failed and result.report is not None
    assert result.report.baseline == demo.BASELINE and result.report.smallest and result.report.fastest
