"""``hgc compare``: the paired bootstrap tells a real accuracy gap from the benchmark's noise."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compress.cli import main
from compress.compare import compare_files, mean_pckh_of, paired_bootstrap
from compress.data.skeleton import MEAN_JOINTS
from compress.errors import HGCError
from compress.metrics import mean_pckh, pckh
from compress.nets import checkpoint
from compress.nets.config import HourglassConfig
from compress.nets.hourglass import StackedHourglass

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "models" / "hg1-32.pt"


def _errors(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, 16)), rng.uniform(0, 1, (n, 16)) > 0.1


def test_the_unweighted_score_is_the_official_mean() -> None:
    errors, counted = _errors(300, 0)
    hits = ((errors < 0.5) & counted).astype(float)
    official = mean_pckh(pckh(np.zeros((300, 16, 2)), np.stack([errors, np.zeros_like(errors)], -1),
                              counted, np.ones(300)))
    assert mean_pckh_of(hits, counted.astype(float), np.ones((1, 300)))[0] == pytest.approx(official)


def test_identical_models_differ_by_nothing() -> None:
    errors, counted = _errors(200, 1)
    a, b, delta, low, high = paired_bootstrap(errors, errors, counted, resamples=200)
    assert a == b and delta == low == high == 0.0


def test_a_real_gap_is_told_and_noise_is_not() -> None:
    errors, counted = _errors(2000, 2)
    better = errors.copy()
    better[:, list(MEAN_JOINTS)] *= 0.9  # every joint 10 % closer: many more hits
    _, _, delta, low, high = paired_bootstrap(errors, better, counted, resamples=300)
    assert delta > 0 and low > 0  # B more accurate, and sure of it
    shuffled = errors.copy()
    rng = np.random.default_rng(3)
    flip = rng.choice(2000, 40, replace=False)  # a few images swap their errors with others: noise only
    shuffled[flip] = errors[rng.permutation(flip)]
    _, _, _, low, high = paired_bootstrap(errors, shuffled, counted, resamples=300)
    assert low <= 0 <= high


def test_compare_files_and_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    same = compare_files(str(SMALL), str(SMALL), limit=16, resamples=50)
    assert same.samples == 16 and same.delta == 0 and same.only_a == same.only_b == 0
    assert same.verdict == "no difference the images can tell"
    assert main(["compare", str(SMALL), str(SMALL), "--limit", "8", "--resamples", "20"]) == 0
    out = capsys.readouterr().out
    assert "B − A: +0.00" in out and "verdict: no difference the images can tell" in out
    assert main(["compare", str(SMALL), str(tmp_path / "missing.pt"), "--limit", "8"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.pt" in err[0]
    other = tmp_path / "small64.pt"
    checkpoint.save(StackedHourglass(HourglassConfig(stacks=1, features=8, depth=2, input_size=64)), other)
    with pytest.raises(HGCError, match="compare models of one input size"):
        compare_files(str(SMALL), str(other), limit=64, resamples=10)
    errors, counted = _errors(10, 4)
    with pytest.raises(HGCError, match="confidence in"):
        paired_bootstrap(errors, errors, counted, confidence=1.5)
    with pytest.raises(HGCError, match="different shapes"):
        paired_bootstrap(errors, errors[:5], counted)
    with pytest.raises(HGCError, match="no annotated instance"):
        paired_bootstrap(errors, errors, np.zeros_like(counted))
