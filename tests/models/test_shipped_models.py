"""Shipped checkpoints under models/: each loads, and its model card's numbers are what ``hgc eval`` gives.

The small model is re-evaluated on the full val split here (CI); the reference model's card is checked
by the slow test, or by hand with the command written in the card.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from compress.evaluate import evaluate, evaluate_file
from compress.io import sha256_file
from compress.measure.machine import deciding_features, machine_info
from compress.nets import checkpoint
from compress.ship import SHIPPABLE

MODELS = Path(__file__).resolve().parents[2] / "models"
CARDED = sorted(p for p in MODELS.glob("*.pt") if p.with_suffix(".md").is_file() and "hgc ship" not in
                p.with_suffix(".md").read_text())  # trained checkpoints, carded by ``hgc card``
SHIPPED = sorted(p for p in MODELS.iterdir() if p.suffix in SHIPPABLE and p.with_suffix(".md").is_file()
                 and p not in CARDED)  # run outputs, carded by ``hgc ship``


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


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_file_is_the_one_its_card_describes(path: Path) -> None:
    numbers = card_numbers(path.with_suffix(".md"))
    weights = path.stat().st_size + (path.with_suffix(".bin").stat().st_size if path.suffix == ".xml" else 0)
    assert numbers["file"] == path.name and numbers["sha256"] == sha256_file(path) and numbers["bytes"] == weights


def _int8_sums(machine_line: str) -> str | None:
    """How a machine line's CPU sums int8 products: ``dot`` (VNNI/AMX, 32-bit) or ``pairs`` (AVX2 without VNNI,
    int16 pairs that can saturate, so an int8 file scores differently there: reports/quantization/README.md)."""
    found = re.search(r"int8 on (\w+)", machine_line)
    return None if not found else "pairs" if found.group(1) == "avx2" else "dot"


def _seven_bit_weights(path: Path) -> bool:
    """An int8 ONNX file whose int8 weights all lie in [-64, 64] (``reduce_range``): no pair of products can
    saturate int16, so every x86 CPU computes the same sums."""
    if path.suffix != ".onnx":
        return False
    weights = [numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer
               if t.data_type == TensorProto.INT8 and len(t.dims) == 4]
    return bool(weights) and max(int(np.abs(w.astype(np.int16)).max()) for w in weights) <= 64


@pytest.mark.slow
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_file_card_accuracy_is_reproduced(path: Path) -> None:
    card = path.with_suffix(".md").read_text()
    numbers = card_numbers(path.with_suffix(".md"))
    carded = _int8_sums(next((line for line in card.splitlines() if line.startswith("Machine:")), ""))
    here = _int8_sums(deciding_features(machine_info().get("isa") or ""))
    if "precision int8" in card and carded and here and carded != here and not _seven_bit_weights(path):
        pytest.skip(f"int8 file evaluated on a CPU summing int8 in {carded}, this one sums in {here}: "
                    "its PCKh differs by design (saturation without VNNI)")
    report = evaluate_file(str(path), numbers["data"], limit=numbers["limit"])
    assert report.result.mean == pytest.approx(numbers["Mean"], abs=0.01)
    assert report.result.mean_01 == pytest.approx(numbers["Mean@0.1"], abs=0.01)
    assert len(report.preds) == numbers["samples"]
