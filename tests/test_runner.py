"""The runner: run directories, results rows, skip-if-unchanged, resume after kill -9, nothing corrupt read."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from compress.cli import main
from compress.errors import HGCError
from compress.nets import checkpoint
from compress.nets.hourglass import StackedHourglass
from compress.recipe import load_recipe
from compress.runner import run_recipe

FAST_MEASURE = "measure: {runtimes: [onnxruntime-cpu], batch: [1], runs: 2, warmup: 0, threads: 1}\n"
FAST_EVAL = "evaluate: {limit: 4, batch_size: 4}\n"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def base(tmp_path: Path, tiny_config) -> str:
    path = tmp_path / "base.pt"
    checkpoint.save(StackedHourglass(tiny_config), path, meta={"pckh": 1.0})
    return str(path)


def _recipe(tmp_path: Path, body: str, name: str = "r") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\n{body}{FAST_EVAL}{FAST_MEASURE}")
    return str(path)


def _finetune(steps: int, every: int = 0) -> str:
    return f"  - finetune: {{steps: {steps}, batch_size: 2, lr: 1.0e-3, checkpoint_every: {every}}}\n"


def test_baseline_run_writes_a_complete_results_row(tmp_path: Path, base: str) -> None:
    path = tmp_path / "baseline.yaml"
    path.write_text(f"name: baseline\nsteps: []\n{FAST_EVAL}"
                    "measure: {runtimes: [onnxruntime-cpu, torch-cpu], batch: [1, 2], runs: 2, warmup: 0, threads: 1}\n")
    result = run_recipe(load_recipe(path), checkpoint=base, out=str(tmp_path / "runs"), progress=False)
    run = Path(result.dir)
    row = json.loads((run / "results.json").read_text())
    assert row["name"] == "baseline" and row["steps"] == [] and row["quick"] is False
    assert (run / row["artifact"]["path"]).is_file() and row["artifact"]["path"] == "final/model.onnx"
    assert row["evaluate"]["samples"] == 4 and 0 <= row["pckh_mean"] <= 100
    assert set(row["pckh"]["per_joint"]) >= {"r_ankle", "head_top"} and "Mean@0.1" in row["pckh"]
    assert row["params"] > 0 and row["macs"] > 0 and row["bytes"] > row["gzip_bytes"] > 0 and row["lzma_bytes"] > 0
    timed = {(r["runtime"], r["batch"]) for r in row["latency"]}
    assert timed == {("onnxruntime-cpu", 1), ("onnxruntime-cpu", 2), ("torch-cpu", 1), ("torch-cpu", 2)}
    assert all(r["p90_ms"] >= r["p50_ms"] > 0 for r in row["latency"])
    assert row["machine"]["cpu"] and row["machine"]["onnxruntime"]
    assert [e["op"] for e in row["lineage"]][-1] == "export"
    assert (run / "recipe.yaml").is_file() and (run / "final" / "eval.json").is_file()


def test_steps_are_skipped_when_unchanged_and_rerun_when_changed(tmp_path: Path, base: str) -> None:
    out = str(tmp_path / "runs")
    path = _recipe(tmp_path, "steps:\n" + _finetune(3) + _finetune(2))
    first = run_recipe(load_recipe(path), checkpoint=base, out=out, progress=False)
    assert [s.status for s in first.steps] == ["ran", "ran", "ran"]
    step = Path(first.dir) / "00-finetune"
    assert {p.name for p in step.iterdir()} == {"model.pt", "log.jsonl", "metrics.json", "done.json"}
    model, info = checkpoint.load(step / "model.pt")
    assert [e["op"] for e in info.lineage] == ["finetune"] and info.lineage[0]["params"]["steps"] == 3
    assert info.lineage[0]["parent_sha256"] == json.loads((step / "done.json").read_text())["inputs"]["parent_sha256"]
    assert len((step / "log.jsonl").read_text().splitlines()) == 3
    again = run_recipe(load_recipe(path), checkpoint=base, out=out, progress=False)
    assert [s.status for s in again.steps] == ["skipped", "skipped", "skipped"]
    Path(path).write_text(Path(path).read_text().replace("steps: 2,", "steps: 3,"))  # edit the second step
    changed = run_recipe(load_recipe(path), checkpoint=base, out=out, progress=False)
    assert [s.status for s in changed.steps] == ["skipped", "ran", "ran"]


def test_a_step_finished_by_another_run_under_the_same_out_is_reused(tmp_path: Path, base: str) -> None:
    out = str(tmp_path / "runs")
    first = run_recipe(load_recipe(_recipe(tmp_path, "steps:\n" + _finetune(3), name="a")), checkpoint=base, out=out,
                       progress=False)
    shared = Path(first.dir) / "00-finetune"
    second = run_recipe(load_recipe(_recipe(tmp_path, "steps:\n" + _finetune(3) + _finetune(2), name="b")),
                        checkpoint=base, out=out, progress=False)
    assert [s.status for s in second.steps] == ["reused", "ran", "ran"] and "reused from a" in second.steps[0].summary
    copied = Path(second.dir) / "00-finetune"
    assert (copied / "model.pt").read_bytes() == (shared / "model.pt").read_bytes()
    assert not any(p.name.startswith(".") for p in Path(second.dir).iterdir() if p.name != ".lock")
    other_seed = _finetune(3).replace("lr: 1.0e-3", "lr: 2.0e-3")  # different inputs: nothing to reuse
    third = run_recipe(load_recipe(_recipe(tmp_path, "steps:\n" + other_seed, name="c")), checkpoint=base, out=out,
                       progress=False)
    assert [s.status for s in third.steps] == ["ran", "ran"]


def test_damaged_outputs_are_never_trusted(tmp_path: Path, base: str) -> None:
    out = str(tmp_path / "runs")
    path = _recipe(tmp_path, "steps:\n" + _finetune(2))
    run_recipe(load_recipe(path), checkpoint=base, out=out, progress=False)
    run = tmp_path / "runs" / "r"
    (run / "final" / "done.json").write_text('{"input_hash": ')  # a torn write
    assert [s.status for s in run_recipe(load_recipe(path), checkpoint=base, out=out, progress=False).steps] \
        == ["skipped", "ran"]
    with open(run / "00-finetune" / "model.pt", "r+b") as handle:  # flipped byte: sha256 ≠ done.json's
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert [s.status for s in run_recipe(load_recipe(path), checkpoint=base, out=out, progress=False).steps] \
        == ["ran", "ran"]
    checkpoint.load(run / "00-finetune" / "model.pt")  # rewritten whole


def test_a_deleted_or_changed_final_artifact_reruns_the_final_stage(tmp_path: Path, base: str) -> None:
    out = str(tmp_path / "runs")
    path = _recipe(tmp_path, "steps: []\n")
    run_recipe(load_recipe(path), checkpoint=base, out=out, progress=False)
    final = tmp_path / "runs" / "r" / "final"
    assert json.loads((final / "done.json").read_text())["artifact"] == "final/model.onnx"
    (final / "model.onnx").unlink()
    assert [s.status for s in run_recipe(load_recipe(path), checkpoint=base, out=out, progress=False).steps] \
        == ["ran"]
    assert (final / "model.onnx").is_file()
    with open(final / "model.onnx", "ab") as handle:
        handle.write(b"\0")
    assert [s.status for s in run_recipe(load_recipe(path), checkpoint=base, out=out, progress=False).steps] \
        == ["ran"]
    assert [s.status for s in run_recipe(load_recipe(path), checkpoint=base, out=out, progress=False).steps] \
        == ["skipped"]


def test_an_unreadable_lock_is_one_error_naming_it(tmp_path: Path, base: str) -> None:
    path = _recipe(tmp_path, "steps: []\n")
    lock = tmp_path / "runs" / "r" / ".lock"
    lock.parent.mkdir(parents=True)
    for text in ('{"pid": "abc", "host": "x"}', "garbage"):
        lock.write_text(text)
        with pytest.raises(HGCError, match=f"{lock}: unreadable run lock.*remove {lock}"):
            run_recipe(load_recipe(path), checkpoint=base, out=str(tmp_path / "runs"), progress=False)


def test_invalid_input_writes_nothing(tmp_path: Path, base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "runs"
    path = _recipe(tmp_path, "steps:\n" + _finetune(2))
    monkeypatch.chdir(tmp_path)  # the default base, models/hg2-128.pt, is relative: absent here
    with pytest.raises(HGCError, match="base: models/hg2-128.pt: no such checkpoint file"):
        run_recipe(load_recipe(path), out=str(out))
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(b"not a checkpoint")
    with pytest.raises(HGCError, match="damaged.pt"):
        run_recipe(load_recipe(path), checkpoint=str(damaged), out=str(out))
    with pytest.raises(HGCError, match="--device"):
        run_recipe(load_recipe(path), checkpoint=base, out=str(out), device="tpu")
    assert not out.exists()


def test_kill_9_mid_step_then_rerun_resumes_to_the_same_model(tmp_path: Path, base: str,
                                                              capsys: pytest.CaptureFixture) -> None:
    path = _recipe(tmp_path, "steps:\n" + _finetune(3) + _finetune(60, every=4))
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "compress", "run", path, "--checkpoint", base, "--out",
                             str(killed), "--no-progress"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    step = killed / "r" / "01-finetune"
    deadline = time.monotonic() + 120
    while not (step / "train.pt.state").is_file():
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.monotonic() < deadline, "no periodic checkpoint appeared"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (step / "done.json").exists(), "the step finished before it could be killed; make it longer"
    assert checkpoint.load(step / "train.pt")[1].meta["step"] < 60

    assert main(["run", path, "--checkpoint", base, "--out", str(killed), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "00-finetune: skipped (unchanged)" in printed
    assert "01-finetune: resumed from its last checkpoint" in printed
    assert not (step / "train.pt").exists() and not (step / "attempt.json").exists()  # scratch removed when done

    run_recipe(load_recipe(path), checkpoint=base, out=str(straight), progress=False)
    resumed = checkpoint.load(step / "model.pt")[0].state_dict()
    reference = checkpoint.load(straight / "r" / "01-finetune" / "model.pt")[0].state_dict()
    assert resumed.keys() == reference.keys()
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)
    rows = [json.loads((d / "r" / "results.json").read_text()) for d in (killed, straight)]
    assert rows[0]["pckh"] == rows[1]["pckh"]
    assert [s["op"] for s in rows[0]["steps"]] == ["finetune", "finetune"]


def test_out_that_is_a_file_is_one_error(tmp_path: Path, base: str) -> None:
    path = _recipe(tmp_path, "steps: []\n")
    occupied = tmp_path / "occupied"
    occupied.write_text("x")
    with pytest.raises(HGCError, match=f"--out {occupied}: cannot create the run directory"):
        run_recipe(load_recipe(path), checkpoint=base, out=str(occupied), progress=False)
