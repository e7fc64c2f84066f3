"""``hgc ship``: a finished run's checkpoint or artifact lands byte-identical beside a card measured on the copy;
an unfinished, quick or changed run, or a suffix the run did not make, is one line and writes nothing."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from compress.cli import main
from compress.errors import HGCError
from compress.io import sha256_file
from compress.recipe import parse_recipe
from compress.runner import run_recipe
from compress.ship import ship_run

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "models" / "hg1-32.pt"


def _recipe(name: str) -> object:
    return parse_recipe({"name": name, "steps": [{"finetune": {"steps": 2, "batch_size": 2}}],
                         "evaluate": {"limit": 8, "batch_size": 8}, "measure": {"runtimes": []}}, f"{name}.yaml")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full-budget (not --quick) two-step fine-tune of the shipped small model."""
    out = tmp_path_factory.mktemp("ship")
    result = run_recipe(_recipe("tiny-finetune"), checkpoint=str(SMALL), out=str(out / "runs"), progress=False)
    return Path(result.dir)


def test_checkpoint_is_shipped_byte_identical_with_a_card(finished_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "models" / "tiny.pt"
    out.parent.mkdir()
    result = ship_run(str(finished_run), str(out), limit=8, timing=False)
    step_model = finished_run / "00-finetune" / "model.pt"
    assert out.read_bytes() == step_model.read_bytes() and result.sha256 == sha256_file(step_model)
    card = (tmp_path / "models" / "tiny.md").read_text()
    assert "tiny-finetune.yaml --checkpoint" in card and "| 00-finetune | finetune |" in card
    assert f"PCKh@0.5 **{result.pckh:.2f}**" in card and f"hgc eval {out} --data synthetic:val --limit 8" in card
    recorded = json.loads((finished_run / "results.json").read_text())["pckh_mean"]
    assert result.run_pckh == recorded and abs(result.pckh - recorded) < 1e-6  # same file, same 8 samples
    history = card.split("Its whole history")[1].split("## File")[0]  # the base's lineage, then this run's step
    assert "| 0 | train |" in history and history.rstrip().splitlines()[-1].startswith("| 1 | finetune |")
    assert "## Speed" not in card and sorted(p.name for p in out.parent.iterdir()) == ["tiny.md", "tiny.pt"]
    numbers = json.loads(card.split("```json\n")[-1].split("\n```")[0])  # what tests/models/ checks
    assert numbers["sha256"] == result.sha256 and numbers["samples"] == 8 and numbers["limit"] == 8


def test_artifact_is_timed_side_by_side_against_the_base(finished_run: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tiny.onnx"
    assert main(["ship", str(finished_run), "-o", str(out), "--limit", "8", "--rounds", "3"]) == 0
    assert out.read_bytes() == (finished_run / "final" / "model.onnx").read_bytes()
    card = (tmp_path / "tiny.md").read_text()
    assert "| onnxruntime |" in card and "× smaller than the base's fp32 ONNX export" in card
    assert "3 rounds, 1 thread(s), batch 1" in card and "--pair --threads 1 --batch 1 --runs 3" in card
    printed = capsys.readouterr().out
    assert printed.startswith(f"wrote {out} (") and "faster in onnxruntime" in printed


def test_reference_replaces_the_base_in_sizes_speed_and_commands(finished_run: Path, tmp_path: Path) -> None:
    reference = ROOT / "models" / "hg2-128.pt"  # the run started from hg1-32: compare with another model
    result = ship_run(str(finished_run), str(tmp_path / "tiny.onnx"), limit=8, rounds=3,
                      reference=str(reference))
    card = (tmp_path / "tiny.md").read_text()
    assert f"× smaller than `{reference}`'s fp32 ONNX export" in card and f"--reference {reference}`" in card
    assert f"`hgc export {reference} -o base.onnx`" in card
    assert result.speed[0]["base_bytes"] > 5_000_000  # hg2-128's export, not hg1-32's
    with pytest.raises(HGCError, match="--reference .* is not here"):
        ship_run(str(finished_run), str(tmp_path / "again.onnx"), reference=str(tmp_path / "gone.pt"))


def test_bad_runs_and_suffixes_are_one_line_and_write_nothing(finished_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    with pytest.raises(HGCError, match="no such run directory"):
        ship_run(str(tmp_path / "nope"), str(out))
    (tmp_path / "empty").mkdir()
    with pytest.raises(HGCError, match="not a finished hgc run"):
        ship_run(str(tmp_path / "empty"), str(out))
    with pytest.raises(HGCError, match=r"its artifact is 'final/model.onnx', not a \.hgz file"):
        ship_run(str(finished_run), str(tmp_path / "m.hgz"))
    with pytest.raises(HGCError, match="-o must end in one of"):
        ship_run(str(finished_run), str(tmp_path / "m.bin"))
    changed = tmp_path / "changed"
    shutil.copytree(finished_run, changed)
    with open(changed / "00-finetune" / "model.pt", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(HGCError, match="changed since the run recorded it"):
        ship_run(str(changed), str(out), timing=False)
    quick = json.loads((changed / "results.json").read_text())
    (changed / "results.json").write_text(json.dumps({**quick, "quick": True}))
    with pytest.raises(HGCError, match="a --quick run"):
        ship_run(str(changed), str(out), timing=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["changed", "empty"]


def test_cli_error_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ship", str(tmp_path), "-o", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a finished hgc run" in err[0]
