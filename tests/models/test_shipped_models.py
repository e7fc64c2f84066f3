"""Shipped checkpoints under models/: each loads, and its model card's numbers are what ``hgc eval`` gives.

The small model is re-evaluated on the full val split here (CI); the reference model's card is checked
by the slow test, or by hand with the command written in the card.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from compress.evaluate import evaluate
from compress.nets import checkpoint

MODELS = Path(__file__).resolve().parents[2] / "models"
CARDED = sorted(p for p in MODELS.glob("*.pt") if p.with_suffix(".md").is_file())


def card_numbers(card: Path) -> dict:
    """The machine-readable JSON block that ``hgc card`` writes at the end of a model card."""
    blocks = re.findall(r"```json\n(.*?)\n```", card.read_text(), flags=re.S)
    return json.loads(blocks[-1])


def test_every_checkpoint_has_a_card() -> None:
    assert CARDED, f"no shipped checkpoints with model cards under {MODELS}"
    for path in MODELS.glob("*.pt"):
        assert path.with_suffix(".md").is_file(), f"{path.name} has no model card"


def _check_card(path: Path) -> None:
    numbers = card_numbers(path.with_suffix(".md"))
    model, info = checkpoint.load(path)
    report = evaluate(model, numbers["data"])
    table = report.result.to_dict()
    for column in ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean@0.1", "AUC"):
        assert table[column] == pytest.approx(numbers[column], abs=0.01), column
    assert len(report.indices) == numbers["samples"]


@pytest.mark.parametrize("path", [p for p in CARDED if p.stat().st_size < 2_000_000], ids=lambda p: p.name)
def test_small_model_card_is_reproduced(path: Path) -> None:
    _check_card(path)


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in CARDED if p.stat().st_size >= 2_000_000], ids=lambda p: p.name)
def test_reference_model_card_is_reproduced(path: Path) -> None:
    _check_card(path)
