"""``hgc train`` / ``hgc eval`` from the command line: the happy path and one-line errors for bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from compress.cli import main

TINY = ["--stacks", "1", "--features", "16", "--depth", "2", "--input-size", "32", "--batch-size", "2",
        "--no-progress"]


def _error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


def test_train_then_eval_prints_a_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "t.pt"
    assert main(["train", "--data", "synthetic", "--steps", "3", "--out", str(out), *TINY]) == 0
    assert out.is_file()
    capsys.readouterr()
    assert main(["eval", str(out), "--data", "synthetic:val", "--limit", "8"]) == 0
    text = capsys.readouterr().out
    for column in ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "AUC"):
        assert column in text
    assert main(["eval", str(out), "--limit", "8", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["samples"] == 8 and 0 <= data["Mean"] <= 100 and "per_joint" in data


def test_python_dash_m_compress_runs() -> None:
    proc = subprocess.run([sys.executable, "-m", "compress", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "train" in proc.stdout and "eval" in proc.stdout


def test_truncated_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["eval", str(bad), "--limit", "2"]) == 2
    assert "bad.pt" in _error_line(capsys)


def test_pickled_class_checkpoint_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "hgc-checkpoint/1", "obj": os.system}, path)
    assert main(["eval", str(path), "--limit", "2"]) == 2
    assert "refused to load" in _error_line(capsys)


def test_unknown_block_type(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["train", "--steps", "1", "--out", str(tmp_path / "x.pt"), *TINY, "--block", "nope"])
    assert code == 2
    assert "unknown block type 'nope'" in _error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_missing_output_directory(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--steps", "1", "--out", str(tmp_path / "no" / "x.pt"), *TINY]) == 2
    assert "does not exist" in _error_line(capsys)


def test_unknown_data_source(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--data", "coco", "--steps", "1", "--out", str(tmp_path / "x.pt"), *TINY]) == 2
    assert "unknown data source 'coco'" in _error_line(capsys)


def test_annotation_file_missing_a_field(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    h5py = pytest.importorskip("h5py")
    annot = tmp_path / "valid.h5"
    with h5py.File(annot, "w") as f:
        f["center"] = [[10.0, 10.0]]
    ckpt = tmp_path / "t.pt"
    assert main(["train", "--steps", "1", "--out", str(ckpt), *TINY]) == 0
    capsys.readouterr()
    assert main(["eval", str(ckpt), "--data", f"mpii:{annot}"]) == 2
    assert "valid.h5" in _error_line(capsys)


def test_nonexistent_image_path(tmp_path: Path, capsys: pytest.CaptureFixture, mpii_dir: Path) -> None:
    ckpt = tmp_path / "t.pt"
    assert main(["train", "--steps", "1", "--out", str(ckpt), *TINY]) == 0
    capsys.readouterr()
    assert main(["eval", str(ckpt), "--data", f"mpii:{mpii_dir / 'valid.h5'}:{tmp_path / 'no_images'}"]) == 2
    assert "no_images" in _error_line(capsys)


def test_skip_bad_counts_unreadable_images(tmp_path: Path, capsys: pytest.CaptureFixture, mpii_dir: Path) -> None:
    h5py = pytest.importorskip("h5py")
    import cv2
    import numpy as np

    with h5py.File(mpii_dir / "valid.h5", "r") as f:
        all_names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["imgname"][:]]
    names = sorted(set(all_names[:6]))
    assert len(names) >= 2
    images = tmp_path / "images"
    images.mkdir()
    for name in names[1:]:
        cv2.imwrite(str(images / name), np.full((96, 128, 3), 90, np.uint8))
    (images / names[0]).write_bytes(b"not a jpeg")  # referenced, present, unreadable
    readable = sum(n in names[1:] for n in all_names)
    ckpt = tmp_path / "t.pt"
    assert main(["train", "--steps", "1", "--out", str(ckpt), *TINY]) == 0
    capsys.readouterr()
    assert main(["eval", str(ckpt), "--data", f"mpii:{mpii_dir / 'valid.h5'}:{images}", "--skip-bad", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["samples"] == readable and data["skipped"] == 2958 - readable
    preds = tmp_path / "preds.mat"
    assert main(["eval", str(ckpt), "--data", f"mpii:{mpii_dir / 'valid.h5'}:{images}", "--skip-bad",
                 "--preds", str(preds)]) == 0
    import scipy.io

    rows = scipy.io.loadmat(str(preds))["preds"]
    assert rows.shape == (2958, 16, 2)
    assert int(np.isfinite(rows[:, 0, 0]).sum()) == readable  # one row per record, in file order
