"""Checkpoints: round trip, rebuilt from config alone, and every damaged or unsafe file refused."""
from __future__ import annotations

import collections
import os
from pathlib import Path

import pytest
import torch

from compress.errors import HGCError
from compress.nets import checkpoint
from compress.nets.config import HourglassConfig
from compress.nets.hourglass import StackedHourglass


def _saved(tmp_path: Path, config: HourglassConfig) -> tuple[StackedHourglass, Path]:
    model = StackedHourglass(config).eval()
    path = tmp_path / "m.pt"
    checkpoint.save(model, path, meta={"pckh": 12.5}, lineage=[{"op": "train", "params": {}, "parent_sha256": None}])
    return model, path


def test_round_trip_same_outputs_and_metadata(tmp_path: Path, tiny2_config: HourglassConfig) -> None:
    model, path = _saved(tmp_path, tiny2_config)
    loaded, info = checkpoint.load(path)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(model(x), loaded(x))
    assert info.config == tiny2_config
    assert info.meta["pckh"] == 12.5 and "created" in info.meta and "code_version" in info.meta
    assert info.lineage[0]["op"] == "train"
    assert len(info.sha256) == 64
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"], "no temp files left behind"


def test_pruned_widths_survive_the_round_trip(tmp_path: Path, tiny_config: HourglassConfig) -> None:
    widths = {"stacks.0.hourglass.skip.0.conv1": [3, 16, 1], "stacks.0.hourglass.skip.0.bn2": [3],
              "stacks.0.hourglass.skip.0.conv2": [3, 3, 1], "stacks.0.hourglass.skip.0.bn3": [3],
              "stacks.0.hourglass.skip.0.conv3": [16, 3, 1]}
    model, path = _saved(tmp_path, tiny_config.replace(widths=widths))
    loaded, info = checkpoint.load(path)
    assert loaded.stacks[0].hourglass.skip[0].conv2.weight.shape == (3, 3, 3, 3)
    assert info.config.widths == widths


def test_truncated_file_is_refused(tmp_path: Path, tiny_config: HourglassConfig) -> None:
    _, path = _saved(tmp_path, tiny_config)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(HGCError, match="truncated or damaged"):
        checkpoint.load(path)


class Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_pickled_class_is_refused_not_executed(tmp_path: Path, tiny_config: HourglassConfig, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"format": "hgc-checkpoint/1", "config": {}, "state_dict": {}, "x": Evil()}, path)
    with pytest.raises(HGCError, match="refused to load"):
        checkpoint.load(path)
    assert not (tmp_path / "PWNED").exists()


def test_tensors_not_matching_config(tmp_path: Path, tiny_config: HourglassConfig) -> None:
    _, path = _saved(tmp_path, tiny_config)
    payload = torch.load(path, weights_only=True)
    payload["config"]["features"] = 32
    torch.save(payload, path)
    with pytest.raises(HGCError, match="has shape"):
        checkpoint.load(path)
    del payload["state_dict"]["stem.conv.0.weight"]
    payload["config"]["features"] = 16
    torch.save(payload, path)
    with pytest.raises(HGCError, match="missing"):
        checkpoint.load(path)


def test_unknown_block_in_config(tmp_path: Path, tiny_config: HourglassConfig) -> None:
    _, path = _saved(tmp_path, tiny_config)
    payload = torch.load(path, weights_only=True)
    payload["config"]["block"] = "transformer"
    torch.save(payload, path)
    with pytest.raises(HGCError, match="unknown block type 'transformer'"):
        checkpoint.load(path)


def test_foreign_checkpoint_points_to_convert(tmp_path: Path) -> None:
    path = tmp_path / "peer.pt"
    torch.save({"state_dict": collections.OrderedDict(w=torch.zeros(1))}, path)
    with pytest.raises(HGCError, match="hgc convert"):
        checkpoint.load(path)


def test_missing_file_and_missing_directory(tmp_path: Path, tiny_config: HourglassConfig) -> None:
    with pytest.raises(HGCError, match="no such checkpoint"):
        checkpoint.load(tmp_path / "nope.pt")
    with pytest.raises(HGCError, match="does not exist"):
        checkpoint.save(StackedHourglass(tiny_config), tmp_path / "no" / "dir" / "m.pt")
