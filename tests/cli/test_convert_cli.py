"""``hgc convert`` and ``hgc mpii-score`` from the command line: happy paths and one-line errors."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from compress.cli import main
from compress.nets import checkpoint

_PEERS = Path(__file__).resolve().parents[1] / "nets" / "test_convert.py"
_spec = importlib.util.spec_from_file_location("peer_layouts", _PEERS)
peers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(peers)  # the peer-layout writers and functional forwards of tests/nets/test_convert.py


def _error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


def test_convert_both_peers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = peers.save_peer(tmp_path / "checkpoint.pt", peers.princeton_state(nstack=1), prefix="model.module.")
    out = tmp_path / "models" / "p.pt"
    out.parent.mkdir()
    assert main(["convert", "--from", "princeton", str(src), "-o", str(out), "--input-size", "32"]) == 0
    text = capsys.readouterr().out
    assert "dropped 18 unused" in text and "permute(0, 3, 1, 2)" in text
    model, info = checkpoint.load(out)
    images = torch.rand(1, 32, 32, 3)
    with torch.no_grad():
        expected = peers.princeton_forward(peers.princeton_state(nstack=1), images, 1, 2)
        assert (model(images.permute(0, 3, 1, 2)) - expected).abs().max() <= 1e-5

    src = peers.save_peer(tmp_path / "model_best.pth.tar", peers.pytorch_pose_state(stacks=1, blocks=1), "module.")
    args = ["convert", "--from", "pytorch-pose", str(src), "-o", str(tmp_path / "b.pt"), "--input-size", "32",
            "--mean", "0.5", "0.5", "0.5", "--std", "0.25", "0.25", "0.25"]
    assert main(args) == 0
    assert "mean [0.5, 0.5, 0.5] std [0.25, 0.25, 0.25]" in capsys.readouterr().out
    assert checkpoint.load(tmp_path / "b.pt")[1].config.input.std == (0.25, 0.25, 0.25)


@pytest.mark.parametrize("case, words", [
    ("neither", "keys from neither"),
    ("missing", "missing key(s): 'outs.0.conv.bias'"),
    ("wrong-from", "use --from princeton"),
    ("pickled", "refused to load"),
])
def test_convert_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, case: str, words: str) -> None:
    path = tmp_path / "in.pt"
    if case == "neither":
        torch.save({"state_dict": {"encoder.0.weight": torch.zeros(2)}}, path)
    elif case == "missing":
        state = peers.princeton_state(nstack=1)
        del state["outs.0.conv.bias"]
        torch.save(state, path)
    elif case == "wrong-from":
        torch.save(peers.princeton_state(nstack=1), path)
    else:
        torch.save(torch.nn.Linear(2, 2), path)
    source = "pytorch-pose" if case == "wrong-from" else "princeton"
    assert main(["convert", "--from", source, str(path), "-o", str(tmp_path / "out.pt")]) == 2
    err = _error_line(capsys)
    assert err.startswith("hgc convert: error: ") and words in err and str(path) in err
    assert not (tmp_path / "out.pt").exists()


def test_mpii_score_prints_the_stored_predictions_table(mpii_dir: Path, capsys: pytest.CaptureFixture) -> None:
    gt = str(mpii_dir / "detections_our_format.mat")
    assert main(["mpii-score", gt, "--gt", gt]) == 0
    head, row = capsys.readouterr().out.strip().splitlines()[-2:]
    table = dict(zip(head.split(), map(float, row.split())))
    assert table["Mean"] == 81.46 and table["Head"] == 95.60 and set(table) >= {"Shoulder", "Ankle", "AUC"}
    assert main(["mpii-score", gt, "--gt", gt, "--json"]) == 0
    assert round(json.loads(capsys.readouterr().out)["Mean"], 2) == 81.46


def test_mpii_score_bad_file_is_one_line(tmp_path: Path, mpii_dir: Path, capsys: pytest.CaptureFixture) -> None:
    gt = str(mpii_dir / "detections_our_format.mat")
    assert main(["mpii-score", str(tmp_path / "absent.mat"), "--gt", gt]) == 2
    assert "absent.mat" in _error_line(capsys)
