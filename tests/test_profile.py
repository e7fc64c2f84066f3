"""hgc profile / measure.ops: onnxruntime time per operator type, round-robin over files."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from compress.errors import HGCError
from compress.export import export_onnx
from compress.measure.ops import op_profiles
from compress.nets import checkpoint
from compress.nets.config import HourglassConfig
from compress.nets.hourglass import StackedHourglass

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    tmp = tmp_path_factory.mktemp("profile")
    paths = []
    for name, features in (("wide", 32), ("narrow", 16)):
        torch.manual_seed(0)
        config = HourglassConfig(stacks=1, features=features, depth=2, input_size=32)
        checkpoint.save(StackedHourglass(config), tmp / f"{name}.pt")
        export_onnx(str(tmp / f"{name}.pt"), str(tmp / f"{name}.onnx"))
        paths.append(str(tmp / f"{name}.onnx"))
    return paths


def test_op_types_kernels_shares_and_ratios(onnx_files: list[str]) -> None:
    table = op_profiles(onnx_files, runs=3, warmup=1).set_index("op_type")
    assert "Conv" in table.index and "(all kernels)" == table.index[-1]
    ops = table.drop(index="(all kernels)")
    for label in ("wide.onnx", "narrow.onnx"):
        assert ops[f"share:{label}"].sum() == pytest.approx(1.0)
        assert table.loc["(all kernels)", f"ms:{label}"] == pytest.approx(ops[f"ms:{label}"].sum())
    assert ops.loc["Conv", "kernels:wide.onnx"] > 0 and ops.loc["Conv", "kernels:narrow.onnx"] > 0
    both = (table["ms:wide.onnx"] > 0) & (table["ms:narrow.onnx"] > 0)
    ratio = table["ms:wide.onnx"][both] / table["ms:narrow.onnx"][both]
    assert table["x:narrow.onnx"][both].to_numpy() == pytest.approx(ratio.to_numpy())
    assert table["x:narrow.onnx"][~both].isna().all()  # an op type one file lacks: no ratio


def test_bad_input_is_one_line(onnx_files: list[str], tmp_path: Path) -> None:
    for paths, words in (([str(tmp_path / "m.pt")], "not an ONNX file"), ([str(tmp_path / "gone.onnx")], "no such"),
                         ([onnx_files[0], onnx_files[0]], "listed twice")):
        with pytest.raises(HGCError, match=words):
            op_profiles(paths, runs=1)
    with pytest.raises(HGCError, match="fixed at 1; profile it with --batch 1"):  # hgc export's default
        op_profiles(onnx_files[:1], runs=1, batch=2)
    cli = subprocess.run([sys.executable, "-m", "compress", "profile", str(tmp_path / "gone.onnx")],
                         capture_output=True, text=True, check=False)
    assert cli.returncode != 0 and "Traceback" not in cli.stderr and "no such file" in cli.stderr
