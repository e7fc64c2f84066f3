"""``hgc pack`` / ``hgc unpack`` and the commands that read ``.hgz`` files (eval, inspect, export) on a tiny model."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from compress.cli import main
from compress.nets import checkpoint
from compress.nets.hourglass import StackedHourglass


@pytest.fixture
def tiny_pt(tmp_path: Path, tiny_config) -> Path:
    model = StackedHourglass(tiny_config).eval()
    with torch.no_grad():
        for conv in model.modules():
            if isinstance(conv, torch.nn.Conv2d):
                conv.weight.copy_(torch.round(conv.weight * 30) / 30)  # few distinct values: codebook layers
    path = tmp_path / "tiny.pt"
    checkpoint.save(model, path, meta={"dataset": "synthetic"})
    return path


def test_pack_unpack_eval_inspect_export(tiny_pt: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    packed, back = tmp_path / "tiny.hgz", tmp_path / "back.pt"
    assert main(["pack", str(tiny_pt), "-o", str(packed), "--compare", "--floats", "exact", "--no-fold-norms"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {packed}" in out and "bits/weight" in out and "huffman" in out and "decode_s" in out
    assert main(["unpack", str(packed), "-o", str(back)]) == 0
    original, _ = checkpoint.load(tiny_pt)
    restored, info = checkpoint.load(back)
    for (name, a), b in zip(original.state_dict().items(), restored.state_dict().values()):
        assert torch.equal(a, b), name
    assert [s["op"] for s in info.lineage][-2:] == ["pack", "unpack"]
    capsys.readouterr()
    assert main(["eval", str(packed), "--limit", "4", "--batch-size", "4", "--json"]) == 0
    assert '"Mean"' in capsys.readouterr().out
    assert main(["inspect", str(packed)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(str(packed)))
    assert " packed " in row and "coder" not in row
    onnx_path = tmp_path / "tiny.onnx"
    assert main(["export", str(packed), "-o", str(onnx_path), "--parity-images", "2"]) == 0
    assert onnx_path.is_file()


def test_default_pack_stores_folded_fp16_floats_and_keeps_the_function(tiny_pt: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    exact, compact, back = tmp_path / "exact.hgz", tmp_path / "compact.hgz", tmp_path / "back.pt"
    assert main(["pack", str(tiny_pt), "-o", str(exact), "--floats", "exact", "--no-fold-norms"]) == 0
    assert main(["pack", str(tiny_pt), "-o", str(compact)]) == 0
    assert "BatchNorms folded" in capsys.readouterr().out
    assert compact.stat().st_size < exact.stat().st_size
    assert main(["unpack", str(compact), "-o", str(back)]) == 0
    original, _ = checkpoint.load(tiny_pt)
    restored, _ = checkpoint.load(back)
    for name, tensor in restored.state_dict().items():
        if tensor.is_floating_point():
            assert torch.equal(tensor, tensor.half().float()), name
        if name.endswith("running_mean"):
            assert not tensor.any(), name
    torch.manual_seed(0)
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        want, got = original.eval()(images)[-1], restored.eval()(images)[-1]
    assert (got - want).abs().max() <= 1e-2 * want.abs().max()
    assert not torch.equal(got, want)


@pytest.mark.parametrize("case", ["truncated", "onnx-input", "wrong-suffix"])
def test_bad_input_is_one_line_and_writes_nothing(tiny_pt: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                  case: str) -> None:
    packed = tmp_path / "tiny.hgz"
    assert main(["pack", str(tiny_pt), "-o", str(packed)]) == 0
    capsys.readouterr()
    if case == "truncated":
        packed.write_bytes(packed.read_bytes()[:-100])
        args, target = ["unpack", str(packed), "-o", str(tmp_path / "out.pt")], tmp_path / "out.pt"
        words = "damaged"
    elif case == "onnx-input":
        (tmp_path / "m.onnx").write_bytes(b"x")
        args, target = ["pack", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "o.hgz")], tmp_path / "o.hgz"
        words = "hgc pack takes an hgc checkpoint"
    else:
        args, target = ["pack", str(tiny_pt), "-o", str(tmp_path / "o.zip")], tmp_path / "o.zip"
        words = "must end in .hgz"
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
    assert not target.exists()
