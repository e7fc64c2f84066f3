"""``hgc archive``: a finished run's report row (results.json + evaluated artifact) is kept byte-identical, and a
report made from the archive alone — the run directories gone — has the same rows and re-times the kept files."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from compress.archive import archive_run
from compress.cli import main
from compress.errors import HGCError
from compress.io import sha256_file
from compress.recipe import parse_recipe
from compress.report import build_report
from compress.runner import run_recipe

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "models" / "hg1-32.pt"


def _recipe(name: str, steps: list[dict]) -> object:
    return parse_recipe({"name": name, "steps": steps, "evaluate": {"limit": 8, "batch_size": 8},
                         "measure": {"runtimes": ["onnxruntime-cpu"], "batch": [1], "runs": 2}}, f"{name}.yaml")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A baseline run and a two-step fine-tune of the shipped small model, both finished at full budget."""
    out = tmp_path_factory.mktemp("archive") / "runs"
    run_recipe(_recipe("baseline", []), checkpoint=str(SMALL), out=str(out), progress=False)
    run_recipe(_recipe("tiny-finetune", [{"finetune": {"steps": 2, "batch_size": 2}}]), checkpoint=str(SMALL),
               out=str(out), progress=False)
    run_recipe(_recipe("tiny-packed", [{"cluster": {"k": 4, "tune": None}}, {"pack": {}}]), checkpoint=str(SMALL),
               out=str(out), progress=False)
    return out


def test_a_packed_run_keeps_the_hgz_and_its_row_is_retimed_from_it(runs: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    kept = archive_run(str(runs / "tiny-packed"), str(tmp_path))
    assert sorted(kept.files) == ["01-pack/model.hgz", "recipe.yaml", "results.json"]  # no unpacked ONNX copy
    archive_run(str(runs / "baseline"), str(tmp_path))
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    rep = build_report([str(tmp_path)], str(tmp_path / "report"), side_by_side_rounds=2)
    assert rep.table.set_index("run").loc["tiny-packed", "sbs_ms"] > 0  # unpacked from the kept .hgz, then timed
    assert not (tmp_path / "tiny-packed" / "final").exists()  # the unpacking went to a temporary directory …
    assert list(temp.iterdir()) == []  # … which is gone


def test_an_interrupted_copy_leaves_nothing_a_report_would_read(runs: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    calls, real_copy = [], shutil.copyfile

    def copy_then_fail(src: object, dst: object) -> None:
        calls.append(src)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_copy(src, dst)

    monkeypatch.setattr("compress.archive.shutil.copyfile", copy_then_fail)
    with pytest.raises(KeyboardInterrupt):
        archive_run(str(runs / "tiny-finetune"), str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_archived_runs_make_the_same_report_without_their_run_directories(runs: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    kept = tmp_path / "kept"
    kept.mkdir()
    assert main(["archive", str(runs / "baseline"), str(runs / "tiny-finetune"), "-o", str(kept)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"{kept / 'baseline'}: 3 files, ") and len(printed) == 2
    fine = kept / "tiny-finetune"
    assert sorted(str(p.relative_to(fine)) for p in fine.rglob("*") if p.is_file()) == \
        ["final/model.onnx", "recipe.yaml", "results.json"]  # no checkpoints, no step directories
    assert (fine / "results.json").read_bytes() == (runs / "tiny-finetune" / "results.json").read_bytes()
    assert not [p for p in kept.iterdir() if p.name.startswith(".")]  # no scratch left behind

    from_runs = build_report([str(runs / "baseline"), str(runs / "tiny-finetune")], str(tmp_path / "a"),
                             side_by_side_rounds=2)
    moved = tmp_path / "gone"
    shutil.copytree(runs, moved)
    shutil.rmtree(runs)
    try:
        from_archive = build_report([str(kept)], str(tmp_path / "b"), side_by_side_rounds=2)
    finally:
        shutil.copytree(moved, runs)
    cols = ["run", "pckh", "params", "macs", "bytes"]
    assert from_archive.table[cols].sort_values("run").values.tolist() == \
        from_runs.table[cols].sort_values("run").values.tolist()
    assert from_archive.table["sbs_ms"].notna().all()  # the kept artifacts were re-timed, not read back


def test_archiving_again_is_a_no_op_and_a_different_run_is_refused(runs: Path, tmp_path: Path) -> None:
    first = archive_run(str(runs / "tiny-finetune"), str(tmp_path))
    assert not first.unchanged and archive_run(str(runs / "tiny-finetune"), str(tmp_path)).unchanged
    results = json.loads((tmp_path / "tiny-finetune" / "results.json").read_text())
    results["pckh_mean"] = 99.0
    (tmp_path / "tiny-finetune" / "results.json").write_text(json.dumps(results))
    with pytest.raises(HGCError, match="already holds a different run named 'tiny-finetune': remove it first"):
        archive_run(str(runs / "tiny-finetune"), str(tmp_path))


def test_bad_runs_are_one_line_and_write_nothing(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                 ) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(runs / "tiny-finetune", broken)
    (broken / "final" / "model.onnx").write_bytes(b"not the evaluated file")
    out = tmp_path / "out"
    out.mkdir()
    assert main(["archive", str(broken), "-o", str(out)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "changed since the run recorded it" in err[0]
    (broken / "results.json").unlink()
    with pytest.raises(HGCError, match="not a finished hgc run"):
        archive_run(str(broken), str(out))
    with pytest.raises(HGCError, match="no such directory"):
        archive_run(str(runs / "baseline"), str(tmp_path / "missing"))
    assert list(out.iterdir()) == []


def test_checkpoint_keeps_the_last_steps_model_for_ship_and_later_recipes(runs: Path, tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert not archive_run(str(runs / "tiny-finetune"), str(tmp_path)).unchanged
    added = archive_run(str(runs / "tiny-finetune"), str(tmp_path), checkpoint=True)  # the same run: adds it
    assert not added.unchanged and archive_run(str(runs / "tiny-finetune"), str(tmp_path), checkpoint=True).unchanged
    kept = tmp_path / "tiny-finetune"
    assert sorted(str(p.relative_to(kept)) for p in kept.rglob("*") if p.is_file()) == \
        ["00-finetune/model.pt", "final/model.onnx", "recipe.yaml", "results.json"]
    assert (kept / "00-finetune" / "model.pt").read_bytes() == \
        (runs / "tiny-finetune" / "00-finetune" / "model.pt").read_bytes()
    results = json.loads((kept / "results.json").read_text())
    assert sha256_file(kept / "00-finetune" / "model.pt") == results["steps"][-1]["output_sha256"]
    again = run_recipe(_recipe("continued", [{"finetune": {"steps": 2, "batch_size": 2}}]),
                       checkpoint=str(kept / "00-finetune" / "model.pt"), out=str(tmp_path / "runs"), progress=False)
    assert again.results["base_sha256"] == results["steps"][-1]["output_sha256"]  # continued from the kept file
    capsys.readouterr()
    assert main(["archive", str(runs / "baseline"), "-o", str(tmp_path), "--checkpoint"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no recipe steps" in err[0]
    assert not (tmp_path / "baseline").exists()
    moved = tmp_path / "moved"
    shutil.copytree(runs / "tiny-finetune", moved)
    (moved / "00-finetune" / "model.pt").write_bytes(b"not the step's output")
    with pytest.raises(HGCError, match="changed since the run recorded it"):
        archive_run(str(moved), str(tmp_path / "runs"), checkpoint=True)
