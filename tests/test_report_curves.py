"""Training curves in reports: whole-run step counts, the steps-to-reach pairs, the plot and the section."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from compress.report import build_report
from compress.report_curves import curve_pairs, reach, run_curve
from tests.test_report import _results


def _swap_steps(blockwise: int, curve: list[list[float]]) -> list[dict]:
    return [{"op": "swap", "metrics": {"blockwise_steps": blockwise, "steps": int(curve[-1][0]), "val_curve": curve}}]


def test_a_curve_counts_earlier_training_and_blockwise_steps() -> None:
    steps = [{"op": "finetune", "metrics": {"steps": 50}},
             {"op": "swap", "metrics": {"blockwise_steps": 20, "steps": 100, "val_curve": [[50, 60.0], [100, 70.0]]}},
             {"op": "distill", "metrics": {"steps": 30, "val_curve": [[30, 72.5]]}}]
    assert run_curve(steps) == [(120, 60.0), (170, 70.0), (200, 72.5)]
    assert run_curve([{"op": "export"}]) == [] and reach([(10, 50.0), (20, 60.0)], 55.0) == 20
    assert reach([(10, 50.0)], 55.0) is None


def _raw(*rows: tuple[str, str, str, list]) -> pd.DataFrame:
    return pd.DataFrame([{"run": run, "recipe_file": recipe, "overrides": over, "val_curve": json.dumps(curve)}
                         for run, recipe, over, curve in rows])


def test_pairs_are_a_recipe_with_and_without_overrides_in_both_directions() -> None:
    raw = _raw(("dws", "recipes/swap-dws.yaml", "", [[300, 70.0], [400, 75.0], [800, 78.0]]),
               ("dws@blockwise_steps=0", "recipes/swap-dws.yaml", '{"steps.0.swap.blockwise_steps": 0}',
                [[400, 65.0], [800, 74.0]]),
               ("dice", "recipes/swap-dice1.yaml", "", [[800, 71.0]]))  # no sibling: no pair
    pairs = curve_pairs(raw).set_index("run")
    assert list(pairs.index) == ["dws", "dws@blockwise_steps=0"]
    assert pairs.loc["dws", "reaches vs final at"] == 400  # 75.0 ≥ 74.0 at step 400 of the sibling's 800
    assert pairs.loc["dws", "fraction of vs steps"] == pytest.approx(0.5)
    assert pd.isna(pairs.loc["dws@blockwise_steps=0", "reaches vs final at"])
    assert math.isnan(pairs.loc["dws@blockwise_steps=0", "fraction of vs steps"])
    assert curve_pairs(raw.drop(columns="val_curve")).empty


def test_report_draws_the_curves_and_writes_the_pair_table(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for name, over, blockwise, curve in (("swap-dws", {}, 200, [[300, 70.0], [600, 76.0]]),
                                         ("swap-dws@blockwise_steps=0", {"steps.0.swap.blockwise_steps": 0}, 0,
                                          [[400, 66.0], [800, 74.5]])):
        data = _results(name, 1, 80.0, 1.0, 10.0, 12.0)
        data.update(steps=_swap_steps(blockwise, curve), recipe_file="recipes/swap-dws.yaml", overrides=over)
        (runs / name).mkdir(parents=True)
        (runs / name / "results.json").write_text(json.dumps(data))
    rep = build_report([str(runs)], str(tmp_path / "out"), max_drop=1.0, runtime="onnxruntime-cpu")
    md = (tmp_path / "out" / "report.md").read_text()
    assert (tmp_path / "out" / "pckh_vs_steps.png").read_bytes()[:4] == b"\x89PNG"
    assert "![PCKh vs training steps](pckh_vs_steps.png)" in md and "Training curves" in md
    pairs = rep.curve_pairs.set_index("run")
    assert pairs.loc["swap-dws", "steps"] == 800 and pairs.loc["swap-dws", "reaches vs final at"] == 800
    assert pairs.loc["swap-dws", "fraction of vs steps"] == pytest.approx(1.0)  # 200 blockwise + 600 counted
    assert "Training curves" in (tmp_path / "out" / "report.html").read_text()
