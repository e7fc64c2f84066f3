"""reports/size/size_map.py: the one-shot size map packs what it claims (sparsity, ≤ k values per layer)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from compress.nets import checkpoint
from compress.nets.hourglass import StackedHourglass
from compress.packed import load_model


@pytest.fixture(scope="module")
def size_map(repo_script):
    return repo_script("reports/size/size_map.py")


def test_rows_hold_the_sparsity_and_k_they_name(size_map, tiny_config, tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    checkpoint.save(StackedHourglass(tiny_config), path)
    dense = size_map.packed_row(str(path), 0.0, 16, tmp_path)
    sparse = size_map.packed_row(str(path), 0.8, 8, tmp_path)
    assert sparse["bytes"] < dense["bytes"] and sparse["nonzero"] < 0.3 * dense["nonzero"]
    model, _ = load_model(str(tmp_path / "s0.8-k8.hgz"))
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d) and not name.endswith("score"):
            values = torch.unique(module.weight)
            assert len(values) <= 8, name
