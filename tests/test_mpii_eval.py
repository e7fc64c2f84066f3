"""preds.mat writing and official-algorithm scoring (compress.mpii_eval)."""
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from compress.errors import HGCError
from compress.mpii_eval import read_gt_mat, read_preds_mat, score_preds_mat, write_preds_mat

MPII = Path(__file__).resolve().parents[1] / ".." / "shared" / "mpii"
GT = MPII / "detections_our_format.mat"


def straight_line_pckh(pred_src: np.ndarray, m: dict) -> dict:
    """Independent recomputation on the file's own 16×2×N layout, written out step by step."""
    names = [str(x[0]) for x in m["dataset_joints"][0]]
    visible = 1 - m["jnt_missing"]
    dist = np.sqrt(((pred_src - m["pos_gt_src"]) ** 2).sum(axis=1))
    box = m["headboxes_src"]
    head = np.sqrt(((box[1] - box[0]) ** 2).sum(axis=0)) * 0.6
    rel = dist / head[None, :]

    def per_joint(t: float) -> np.ndarray:
        hit = (rel < t) if t > 0 else (rel <= 0)  # the AUC curve's right-limit at t = 0
        return np.array([100.0 * np.sum(hit[j] & (visible[j] == 1)) / np.sum(visible[j]) for j in range(16)])

    def mean14(p: np.ndarray) -> float:
        return float(np.mean([p[j] for j in range(16) if names[j] not in ("pelv", "thor")]))

    p, p01 = per_joint(0.5), per_joint(0.1)
    both = {k: (names.index("r" + k), names.index("l" + k)) for k in ("sho", "elb", "wri", "hip", "kne", "ank")}
    out = {"Head": p[names.index("head")]}
    for col, key in zip(("Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle"), both):
        out[col] = (p[both[key][0]] + p[both[key][1]]) / 2
    out["Mean"] = mean14(p)
    out["Mean@0.1"] = mean14(p01)
    curve = [mean14(per_joint(i / 100)) for i in range(51)]
    out["AUC"] = sum((curve[i] + curve[i + 1]) / 2 * 0.01 for i in range(50)) / 0.5
    return out


def test_stored_pos_pred_src_matches_independent_recomputation(capsys):
    m = scipy.io.loadmat(str(GT))
    result = score_preds_mat(GT, GT)
    expected = straight_line_pckh(m["pos_pred_src"], m)
    got = {**result.table(), "Mean@0.1": result.mean_01, "AUC": result.auc}
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key
    assert round(got["Mean"], 2) == 81.46 and round(got["Head"], 2) == 95.60
    with capsys.disabled():
        print("\nstored pos_pred_src of detections_our_format.mat:\n" + result.format_table())


def test_write_then_score_round_trip(tmp_path):
    gt = read_gt_mat(GT)
    path = tmp_path / "out" / "preds.mat"
    with pytest.raises(HGCError, match="does not exist"):
        write_preds_mat(path, gt.joints - 1.0)
    path.parent.mkdir()
    write_preds_mat(path, gt.joints - 1.0)  # 0-based sample coordinates in
    raw = scipy.io.loadmat(str(path))["preds"]
    assert raw.shape == (2958, 16, 2) and np.array_equal(raw, gt.joints)  # 1-based N×16×2 out
    assert [p.name for p in path.parent.iterdir()] == ["preds.mat"]  # no temp file left behind
    assert score_preds_mat(path, GT).table()["Mean"] == 100.0
    write_preds_mat(path, gt.reference_preds, zero_based=False)
    assert np.array_equal(read_preds_mat(path), gt.reference_preds)
    assert score_preds_mat(path, GT).to_dict() == score_preds_mat(GT, GT).to_dict()


def test_bad_files_raise_one_line_errors(tmp_path):
    garbage = tmp_path / "garbage.mat"
    garbage.write_bytes(b"\x00\x01 not a mat file" * 20)
    with pytest.raises(HGCError, match=r"garbage\.mat.*not a readable MATLAB"):
        score_preds_mat(garbage, GT)
    with pytest.raises(HGCError, match=r"nope\.mat: file not found"):
        score_preds_mat(tmp_path / "nope.mat", GT)
    m = scipy.io.loadmat(str(GT))
    kept = {k: v for k, v in m.items() if k[0] != "_" and k != "headboxes_src"}
    scipy.io.savemat(str(tmp_path / "gt.mat"), kept)
    with pytest.raises(HGCError, match=r"gt\.mat: missing variable 'headboxes_src'"):
        read_gt_mat(tmp_path / "gt.mat")
    scipy.io.savemat(str(tmp_path / "few.mat"), {"preds": np.zeros((10, 16, 2))})
    with pytest.raises(HGCError, match=r"10 predictions.*2958 records"):
        score_preds_mat(tmp_path / "few.mat", GT)
    scipy.io.savemat(str(tmp_path / "shape.mat"), {"preds": np.zeros((2958, 14, 2))})
    with pytest.raises(HGCError, match=r"shape\.mat: variable 'preds' has shape"):
        score_preds_mat(tmp_path / "shape.mat", GT)
    scipy.io.savemat(str(tmp_path / "none.mat"), {"other": np.zeros(3)})
    with pytest.raises(HGCError, match=r"none\.mat: no predictions"):
        read_preds_mat(tmp_path / "none.mat")
    with pytest.raises(HGCError, match="shape"):
        write_preds_mat(tmp_path / "w.mat", np.zeros((5, 16)))
    assert not (tmp_path / "w.mat").exists()
