"""ONNX export: parity passes, a broken export is caught and leaves nothing, metadata round-trips, bad input."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from compress import export
from compress.cli import main
from compress.errors import HGCError
from compress.nets import checkpoint
from compress.nets.config import HourglassConfig
from compress.nets.hourglass import StackedHourglass
from compress.runtime import load_predictor


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, export.ExportResult]:
    """One tiny 2-stack checkpoint and its dynamic-batch export (exports take seconds: share them)."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("export")
    model = StackedHourglass(HourglassConfig(stacks=2, features=16, depth=2, input_size=32)).eval()
    ckpt = folder / "tiny.pt"
    checkpoint.save(model, ckpt, meta={"pckh": 42.5, "dataset": "synthetic"},
                    lineage=[{"op": "train", "params": {"steps": 1}, "parent_sha256": None}])
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        result = export.export_onnx(str(ckpt), folder / "tiny.onnx", dynamic_batch=True, parity_images=4,
                                    eval_limit=6)
    finally:
        os.chdir(cwd)
    return ckpt, folder / "tiny.onnx", result


def test_parity_passes_and_nothing_but_outputs_is_written(exported: tuple) -> None:
    ckpt, onnx_path, result = exported
    assert result.max_abs_diff <= 1e-4 and result.parity_images == 4
    assert result.bytes == onnx_path.stat().st_size > 0 and len(result.sha256) == 64
    assert sorted(p.name for p in onnx_path.parent.iterdir()) == ["tiny.onnx", "tiny.pt"]


def test_metadata_round_trip(exported: tuple) -> None:
    ckpt, onnx_path, _ = exported
    _, info = checkpoint.load(ckpt)
    meta = export.read_metadata(onnx_path)
    assert meta["format"] == export.FORMAT
    assert HourglassConfig.from_dict(meta["config"]) == info.config
    assert meta["meta"]["pckh"] == 42.5 and meta["meta"]["dataset"] == "synthetic"
    assert [step["op"] for step in meta["lineage"]] == ["train", "export"]
    assert meta["lineage"][-1]["parent_sha256"] == info.sha256
    assert meta["input"]["name"] == "image" and meta["input"]["layout"] == "NCHW"
    assert meta["input"]["range"] == [0.0, 1.0] and meta["input"]["mean"] == [0.0, 0.0, 0.0]
    assert meta["output"]["name"] == "heatmaps" and meta["output"]["shape"][1:] == [2, 16, 8, 8]
    assert meta["parity"]["max_abs_diff"] <= 1e-4
    assert meta["accuracy"]["samples"] == 6 and 0 <= meta["accuracy"]["pckh"] <= 100


def test_dynamic_batch_runs_at_batch_1_and_3(exported: tuple) -> None:
    ckpt, onnx_path, _ = exported
    ort_predict, torch_predict = load_predictor(str(onnx_path)), load_predictor(str(ckpt))
    assert ort_predict.batch is None and ort_predict.input_size == 32
    for batch in (1, 3):
        images = np.random.default_rng(batch).random((batch, 3, 32, 32), dtype=np.float32)
        out = ort_predict(images)
        assert out.shape == (batch, 16, 8, 8)
        assert np.abs(out - torch_predict(images)).max() <= 1e-4


def test_broken_export_fails_with_the_figure_and_leaves_nothing(tmp_path: Path, tiny_config: HourglassConfig,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Perturb a weight of the traced graph: parity must catch it, name the figure, and write nothing."""
    from onnx import numpy_helper

    real = export._to_onnx

    def broken(*args: object, **kwargs: object) -> object:
        proto = real(*args, **kwargs)
        tensor = next(t for t in proto.graph.initializer if t.name.endswith("score.bias"))
        tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) + 0.5, tensor.name))
        return proto

    monkeypatch.setattr(export, "_to_onnx", broken)
    monkeypatch.chdir(tmp_path)
    model = StackedHourglass(tiny_config).eval()
    with pytest.raises(HGCError, match=r"parity failed: max \|onnxruntime - PyTorch\| = 0\.5 > atol"):
        export.export_onnx(model, tmp_path / "broken.onnx", parity_images=2)
    assert list(tmp_path.iterdir()) == []


def test_bad_outputs_are_refused_before_exporting(tmp_path: Path, tiny_config: HourglassConfig) -> None:
    model = StackedHourglass(tiny_config)
    with pytest.raises(HGCError, match="does not exist"):
        export.export_onnx(model, tmp_path / "missing" / "m.onnx")
    with pytest.raises(HGCError, match=r"must end in \.onnx"):
        export.export_onnx(model, tmp_path / "m.bin")
    with pytest.raises(HGCError, match="opset 17 or newer"):
        export.export_onnx(model, tmp_path / "m.onnx", opset=13)
    with pytest.raises(HGCError, match="StackedHourglass"):
        export.export_onnx(torch.nn.Linear(2, 2), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_read_metadata_of_a_non_onnx_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\xffnot a protobuf at all\x13\x37" * 10)
    with pytest.raises(HGCError, match="not an ONNX file"):
        export.read_metadata(bad)


def test_cli_export_missing_directory_is_one_line_exit_2(exported: tuple, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    ckpt, _, _ = exported
    code = main(["export", str(ckpt), "-o", str(tmp_path / "nowhere" / "m.onnx")])
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_export_keeps_macs_and_parameters(exported: tuple) -> None:
    """The ONNX counter sees the checkpoint's MACs; BatchNorm folding may only remove parameters."""
    from compress.measure import count_macs, count_params, onnx_macs, onnx_params
    from compress.measure.cost import load_onnx

    ckpt, onnx_path, _ = exported
    model, info = checkpoint.load(ckpt)
    proto = load_onnx(str(onnx_path))
    assert onnx_macs(proto) == count_macs(model, info.config.input_size) > 0
    assert 0.9 * count_params(model) < onnx_params(proto) <= count_params(model)


def test_eval_of_the_export_equals_the_checkpoint(exported: tuple) -> None:
    from compress.evaluate import evaluate_file

    ckpt, onnx_path, _ = exported
    a = evaluate_file(str(ckpt), "synthetic:val", limit=12).result.to_dict()
    b = evaluate_file(str(onnx_path), "synthetic:val", limit=12).result.to_dict()
    assert abs(a["Mean"] - b["Mean"]) <= 0.01 and a["counts"] == b["counts"]
