"""PCKh with the official MPII semantics (compress.metrics)."""
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from compress.errors import HGCError
from compress.metrics import AUC_THRESHOLDS, evaluate_predictions, pckh

MPII = Path(__file__).resolve().parents[1] / ".." / "shared" / "mpii"
COLUMNS = ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean"]


def test_official_ground_truth_as_predictions_scores_100():
    m = scipy.io.loadmat(str(MPII / "detections_our_format.mat"))
    gt = m["pos_gt_src"].transpose(2, 0, 1)
    visible = 1 - m["jnt_missing"].T
    boxes = m["headboxes_src"]
    head = np.linalg.norm(boxes[1] - boxes[0], axis=0) * 0.6
    result = evaluate_predictions(gt.copy(), gt, visible, head)
    assert result.table() == {c: 100.0 for c in COLUMNS}
    assert result.mean_01 == 100.0 and result.auc == 100.0
    assert result.counts.sum() == 2958 * 16 - 3088


def _case(errors_px: np.ndarray, visible: np.ndarray, head: float = 10.0):
    """Predictions displaced along x by errors_px (N, 16) from a fixed ground truth."""
    n = errors_px.shape[0]
    gt = np.tile(np.arange(32, dtype=np.float64).reshape(1, 16, 2) * 7.0, (n, 1, 1))
    pred = gt.copy()
    pred[..., 0] += errors_px
    return pred, gt, visible, np.full(n, head)


def test_hand_built_errors_give_exact_numbers_and_strict_threshold():
    err = np.zeros((4, 16))
    vis = np.ones((4, 16))
    err[:, 9] = [4.9, 5.0, 5.1, 0.0]  # head top: 5 px = exactly 0.5 · head size → wrong (strict)
    err[:, 12] = [0.0, 0.0, 0.0, 6.0]  # r shoulder 75 %
    err[:, 13] = [0.0, 9.0, 9.0, 9.0]  # l shoulder 25 % → Shoulder 50
    err[:, 10] = [1.0, 0.99, 0.0, 0.5]  # r wrist: 1 px = exactly 0.1 → wrong at 0.1
    vis[3, 0] = 0  # r ankle: the wrong one is not annotated → 100
    err[3, 0] = 50.0
    vis[:, 5] = [1, 1, 0, 0]  # l ankle: 1 of 2 annotated right → 50, Ankle 75
    err[1, 5] = 8.0
    result = evaluate_predictions(*_case(err, vis))
    assert result.per_joint[9] == 50.0 and result.per_joint[10] == 100.0
    assert result.table() == {"Head": 50.0, "Shoulder": 50.0, "Elbow": 100.0, "Wrist": 100.0, "Hip": 100.0,
                              "Knee": 100.0, "Ankle": 75.0, "Mean": (1400 - 50 - 25 - 75 - 50) / 14}
    assert result.per_joint_01[10] == 75.0 and result.per_joint_01[9] == 25.0
    assert np.array_equal(pckh(*_case(err, vis)), result.per_joint)
    assert pckh(*_case(err, vis), threshold=0.505)[9] == 75.0


def test_mean_excludes_pelvis_thorax_and_is_unweighted():
    err = np.zeros((4, 16))
    vis = np.ones((4, 16))
    err[:, 6] = err[:, 7] = 100.0  # pelvis and thorax always wrong: no effect on Mean
    vis[1:, 8] = 0  # upper neck: 1 annotated instance, correct → 100
    err[:, 15] = 100.0  # l wrist: 4 annotated, all wrong → 0
    result = evaluate_predictions(*_case(err, vis))
    assert result.per_joint[6] == 0.0 and result.per_joint[7] == 0.0
    assert result.table()["Mean"] == 1300 / 14  # count-weighted (HRNet) would be 4900/53
    assert result.table()["Wrist"] == 50.0
    assert result.counts[8] == 1 and result.counts[15] == 4


def test_unannotated_joint_is_nan_and_auc_grid():
    err = np.full((2, 16), 2.45)  # 0.245 · head size everywhere
    vis = np.ones((2, 16))
    vis[:, 0] = 0
    per = pckh(*_case(err, vis))
    assert np.isnan(per[0]) and np.all(per[1:] == 100.0)
    result = evaluate_predictions(*_case(err, vis))
    assert result.table()["Ankle"] == 100.0  # the annotated ankle alone
    assert len(AUC_THRESHOLDS) == 51 and AUC_THRESHOLDS[-1] == 0.5
    # curve is 0 up to 0.24 and 100 from 0.25: trapezoid area 0.005 + 0.25 over 0.5
    assert result.auc == pytest.approx(51.0, abs=1e-9)
    assert result.mean_01 == 0.0


def test_report_formats_and_errors():
    result = evaluate_predictions(*_case(np.zeros((2, 16)), np.ones((2, 16))))
    text = result.format_table()
    head, row = text.splitlines()
    assert head.split() == COLUMNS + ["Mean@0.1", "AUC"] and row.split()[0] == "100.00"
    assert len(head) == len(row)
    d = json.loads(json.dumps(result.to_dict()))
    assert d["Mean"] == 100.0 and d["AUC"] == 100.0 and d["counts"]["head_top"] == 2
    pred, gt, vis, head_size = _case(np.zeros((2, 16)), np.ones((2, 16)))
    with pytest.raises(HGCError, match="shape"):
        pckh(pred[:, :15], gt, vis, head_size)
    with pytest.raises(HGCError, match="head size"):
        pckh(pred, gt, vis, np.array([10.0, np.nan]))
