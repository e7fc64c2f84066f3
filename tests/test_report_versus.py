"""Prune or swap at equal MACs: the pruning curve, the interpolation, the verdicts and the report section."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from compress.report import build_report

# name, ops, precision, PCKh, MMACs, onnxruntime ms, optimizer steps per training op
RUNS = [("baseline", [], "fp32", 86.0, 600, 20.0),
        ("prune-25", ["prune"], "fp32", 85.6, 450, 16.0),
        ("prune-50", ["prune"], "fp32", 84.0, 300, 12.0),
        ("prune-50-long", ["prune", "finetune"], "fp32", 85.0, 301, 12.4),  # same MACs, more accurate: kept
        ("prune-50-int8", ["prune", "quantize"], "int8", 85.0, 300, 6.0),  # not on the curve (precision)
        ("prune-75", ["prune"], "fp32", 78.0, 150, 8.0),
        ("prune-40-worse", ["prune"], "fp32", 84.5, 360, 9.0),  # out-scored by the cheaper prune-50-long: off
        ("swap-fast", ["swap"], "fp32", 85.5, 375, 11.0),  # between prune-25 and prune-50-long
        ("swap-slow", ["swap"], "fp32", 84.0, 225, 14.0),  # between prune-75 and prune-50-long
        ("swap-tiny", ["swap"], "fp32", 70.0, 100, 5.0),  # below the pruned range
        ("swap-int8", ["swap", "quantize"], "int8", 84.0, 225, 5.0)]  # not a plain student


def _results(name: str, ops: list[str], precision: str, pckh: float, mmacs: float, ms: float) -> dict:
    steps = [{"op": op, "metrics": {"op": op, "steps": 100}} for op in ops]
    return {"format": "hgc-results/1", "name": name, "steps": steps, "precision": precision, "pckh_mean": pckh,
            "params": int(mmacs * 1000), "macs": int(mmacs * 1e6), "bytes": int(mmacs * 1e4), "quick": False,
            "latency": [{"runtime": "onnxruntime-cpu", "batch": 1, "p50_ms": ms, "threads": 1}],
            "machine": {"cpu": "Test CPU"}, "artifact": {"path": "final/model.onnx"}}


@pytest.fixture
def report(tmp_path: Path):
    for run in RUNS:
        (tmp_path / "runs" / run[0]).mkdir(parents=True)
        (tmp_path / "runs" / run[0] / "results.json").write_text(json.dumps(_results(*run)))
    return build_report([str(tmp_path / "runs")], str(tmp_path / "out")), tmp_path / "out"


def test_students_are_compared_with_the_pruning_curve_at_their_macs(report) -> None:
    rep, _ = report
    table = rep.versus.set_index("student")
    assert list(table.index) == ["swap-tiny", "swap-slow", "swap-fast"]  # by MACs; the int8 student left out
    fast = table.loc["swap-fast"]  # halfway (in MACs) between prune-50-long (301) and prune-25 (450)
    t = (375 - 301) / (450 - 301)
    assert fast["pruned PCKh"] == pytest.approx(85.0 + (85.6 - 85.0) * t)
    assert fast["pruned p50 ms"] == pytest.approx(12.4 + (16.0 - 12.4) * t)
    assert fast["between"] == "prune-50-long … prune-25"  # prune-50 (less accurate at equal MACs) dropped
    assert fast["ΔPCKh"] == pytest.approx(85.5 - fast["pruned PCKh"])
    assert fast["×faster"] == pytest.approx(fast["pruned p50 ms"] / 11.0)
    assert fast["verdict"] == "swap"  # more accurate and faster
    slow = table.loc["swap-slow"]
    assert slow["between"] == "prune-75 … prune-50-long" and slow["verdict"] == "swap: more accurate, slower"
    tiny = table.loc["swap-tiny"]
    assert tiny["between"] == "nearest: prune-75" and tiny["verdict"] == "(outside the pruned range)"
    assert tiny["train steps"] == "100" and fast["pruned train steps"] == "200–100"


def test_a_student_above_a_pruned_run_that_beats_the_baseline_meets_that_run(tmp_path: Path) -> None:
    """A cheaper pruned run more accurate than the baseline leaves it alone on the envelope: a student between
    its MACs and the baseline's is compared with it (pruning already gave better for less), with a verdict."""
    runs = [("baseline", [], "fp32", 86.0, 600, 20.0), ("prune-75", ["prune"], "fp32", 78.0, 150, 8.0),
            ("prune-60-best", ["prune", "finetune"], "fp32", 86.5, 250, 10.0),
            ("swap-big", ["swap"], "fp32", 85.0, 500, 18.0), ("swap-huge", ["swap"], "fp32", 87.0, 700, 30.0)]
    for run in runs:
        (tmp_path / "runs" / run[0]).mkdir(parents=True)
        (tmp_path / "runs" / run[0] / "results.json").write_text(json.dumps(_results(*run)))
    table = build_report([str(tmp_path / "runs")], str(tmp_path / "out")).versus.set_index("student")
    big = table.loc["swap-big"]
    assert big["between"] == "≤ prune-60-best" and big["pruned PCKh"] == pytest.approx(86.5)
    assert big["×faster"] == pytest.approx(10.0 / 18.0) and big["verdict"] == "prune"
    huge = table.loc["swap-huge"]  # beyond the baseline's MACs: outside, no verdict
    assert huge["between"] == "nearest: prune-60-best" and huge["verdict"] == "(outside the pruned range)"


def test_the_section_is_in_the_markdown_and_html(report) -> None:
    _, out = report
    md = (out / "report.md").read_text()
    assert "## Prune or swap, at equal MACs" in md and "| swap-fast |" in md and "Runtime: `onnxruntime-cpu`" in md
    assert "**smallest**: `prune-50-int8`" in md and "made by prune → quantize" in md
    assert "Prune or swap, at equal MACs" in (out / "report.html").read_text()


def test_the_picks_name_a_base_other_than_the_baselines(tmp_path: Path) -> None:
    for run in RUNS[:2]:
        data = _results(*run)
        data["base"] = "models/hg2-128.pt" if run[0] == "baseline" else "models/hg2-128-prune50.pt"
        (tmp_path / "runs" / run[0]).mkdir(parents=True)
        (tmp_path / "runs" / run[0] / "results.json").write_text(json.dumps(data))
    build_report([str(tmp_path / "runs")], str(tmp_path / "out"))
    md = (tmp_path / "out" / "report.md").read_text()
    assert "**smallest**: `prune-25` on onnxruntime-cpu" in md
    assert "made by prune from `models/hg2-128-prune50.pt`" in md


def test_no_section_without_a_student(tmp_path: Path) -> None:
    for run in RUNS[:3]:
        (tmp_path / "runs" / run[0]).mkdir(parents=True)
        (tmp_path / "runs" / run[0] / "results.json").write_text(json.dumps(_results(*run)))
    rep = build_report([str(tmp_path / "runs")], str(tmp_path / "out"))
    assert rep.versus.empty and "Prune or swap" not in (tmp_path / "out" / "report.md").read_text()


def test_a_student_continued_from_an_earlier_runs_checkpoint_counts_its_whole_history(tmp_path: Path) -> None:
    """A second sitting (only ``finetune`` of its own, from a swap run's checkpoint) is still a swap student,
    and its train steps add what its lineage says the base trained: swap 200 blockwise + 300, then 100."""
    for run in RUNS[:3]:
        (tmp_path / "runs" / run[0]).mkdir(parents=True)
        (tmp_path / "runs" / run[0] / "results.json").write_text(json.dumps(_results(*run)))
    data = _results("swap-sitting-2", ["finetune"], "fp32", 85.8, 375, 11.0)
    data["base_sha256"] = "b" * 64
    data["lineage"] = [{"op": "train", "params": {"steps": 9000}, "parent_sha256": None},
                       {"op": "swap", "params": {"steps": 300, "blockwise_steps": 200}, "parent_sha256": "r" * 64},
                       {"op": "export", "params": {}, "parent_sha256": "s" * 64},
                       {"op": "finetune", "params": {"steps": 100}, "parent_sha256": "b" * 64},
                       {"op": "export", "params": {}, "parent_sha256": "f" * 64}]
    (tmp_path / "runs" / "swap-sitting-2").mkdir(parents=True)
    (tmp_path / "runs" / "swap-sitting-2" / "results.json").write_text(json.dumps(data))
    rep = build_report([str(tmp_path / "runs")], str(tmp_path / "out"))
    row = rep.versus.set_index("student").loc["swap-sitting-2"]
    assert row["train steps"] == "600" and row["between"] == "prune-50 … prune-25"
    assert set(rep.table[rep.table.run == "swap-sitting-2"].steps) == {"swap → finetune"}
