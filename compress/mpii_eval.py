"""Official MPII evaluation files: write ``preds.mat`` and score it against ``detections_our_format.mat``.

Layouts (checked against ``../shared/mpii`` and the public eval_PCKh scripts):

* ``preds.mat``: one variable ``preds``, float, shape N × 16 × 2 (N = 2958 for the validation set, in
  the record order of ``valid.h5`` / ``pos_gt_src``), joints in MPII order, (x, y) in MPII's 1-based
  MATLAB pixel coordinates. The official scripts load it and transpose to 16 × 2 × N (``pos_pred_src``).
  Our samples are 0-based, so ``write_preds_mat`` adds 1 unless told the input is already 1-based.
* ground truth ``detections_our_format.mat``: ``dataset_joints`` (1 × 16 names: rank rkne rhip lhip lkne
  lank pelv thor neck head rwri relb rsho lsho lelb lwri), ``jnt_missing`` (16 × N, 1 = not annotated),
  ``pos_gt_src`` (16 × 2 × N, 1-based), ``headboxes_src`` (2 × 2 × N: [corner, x/y, record]) and a
  reference prediction ``pos_pred_src`` (16 × 2 × N).
* scoring: jnt_visible = 1 − jnt_missing; head size = 0.6 · ‖headbox[1] − headbox[0]‖; correct iff
  ‖pred − gt‖ / head size < 0.5 (strict); see ``compress.metrics`` for the columns and the Mean.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
import scipy.io

from .data.skeleton import NUM_JOINTS
from .errors import HGCError, first_line
from .io import atomic_path
from .metrics import PCKhResult, evaluate_predictions

SC_BIAS = 0.6
MPII_NAMES: tuple[str, ...] = ("rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor",
                               "neck", "head", "rwri", "relb", "rsho", "lsho", "lelb", "lwri")
_NAME_ALIASES = {"thrx": "thor", "root": "pelv"}


class MPIIGroundTruth(NamedTuple):
    """Ground truth of an official .mat in sample-major order (1-based coordinates, our joint order)."""

    joints: np.ndarray  # (N, 16, 2)
    visible: np.ndarray  # (N, 16) float, 1 − jnt_missing
    headboxes: np.ndarray  # (N, 2, 2) [corner, x/y]
    head_size: np.ndarray  # (N,) 0.6 · ‖diag‖
    reference_preds: np.ndarray | None  # (N, 16, 2) pos_pred_src when stored


def write_preds_mat(path: str | os.PathLike, preds: np.ndarray, zero_based: bool = True) -> None:
    """Write N×16×2 predictions as ``preds.mat`` (variable ``preds``, 1-based MATLAB pixels).

    ``zero_based`` says the input is in our 0-based sample coordinates (1 is added). Atomic: a temp file
    in the target folder is renamed over ``path``, so a crash never leaves a half-written file.
    """
    arr = np.asarray(preds, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, 2):
        raise HGCError(f"{path}: predictions must have shape (N, {NUM_JOINTS}, 2), got {arr.shape}")
    if zero_based:
        arr = arr + 1.0
    with atomic_path(path) as tmp:
        scipy.io.savemat(str(tmp), {"preds": arr}, do_compression=False)


def _load_mat(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Variables of a MATLAB file (v4–v7 via scipy, v7.3/HDF5 via h5py with axes reversed)."""
    p = str(path)
    if not os.path.isfile(p):
        raise HGCError(f"{p}: file not found")
    try:
        return scipy.io.loadmat(p)
    except NotImplementedError:  # MATLAB v7.3 = HDF5; h5py sees the axes in reverse order
        try:
            with h5py.File(p, "r") as f:
                return {k: np.asarray(f[k][()]).T for k in f if isinstance(f[k], h5py.Dataset)}
        except OSError as err:
            raise HGCError(f"{p}: not a readable MATLAB file ({first_line(err)})") from err
    except Exception as err:  # scipy raises assorted ValueError/TypeError/OSError on garbage
        raise HGCError(f"{p}: not a readable MATLAB file ({type(err).__name__}: {first_line(err)})") from err


def _joint_order(path: str, raw: np.ndarray | None) -> list[int]:
    """Column of each of our joints in the file, from ``dataset_joints`` (identity when absent)."""
    if raw is None:
        return list(range(NUM_JOINTS))
    names = [str(np.asarray(x).ravel()[0]) if np.asarray(x).size else "" for x in np.asarray(raw).ravel()]
    names = [_NAME_ALIASES.get(n, n) for n in names]
    missing = [n for n in MPII_NAMES if n not in names]
    if len(names) != NUM_JOINTS or missing:
        raise HGCError(f"{path}: field 'dataset_joints' {names} does not name the 16 MPII joints "
                       f"(missing {missing})")
    return [names.index(n) for n in MPII_NAMES]


def _need(path: str, data: dict, key: str, shape: tuple[int | None, ...]) -> np.ndarray:
    if key not in data:
        raise HGCError(f"{path}: missing variable '{key}'")
    arr = np.asarray(data[key])
    if arr.ndim != len(shape) or any(s is not None and a != s for a, s in zip(arr.shape, shape)):
        want = " × ".join("N" if s is None else str(s) for s in shape)
        raise HGCError(f"{path}: variable '{key}' has shape {arr.shape}, expected {want}")
    try:
        return arr.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise HGCError(f"{path}: variable '{key}' is not numeric ({first_line(err)})") from err


def read_gt_mat(path: str | os.PathLike) -> MPIIGroundTruth:
    """Read an official ground-truth file (``detections_our_format.mat`` / HRNet ``gt_valid.mat``).

    Returns sample-major arrays in our joint order; a missing or misshapen variable names file and key.
    """
    p = str(path)
    data = _load_mat(p)
    order = _joint_order(p, data.get("dataset_joints"))
    missing = _need(p, data, "jnt_missing", (NUM_JOINTS, None))
    n = missing.shape[1]
    gt = _need(p, data, "pos_gt_src", (NUM_JOINTS, 2, n))
    boxes = _need(p, data, "headboxes_src", (2, 2, n))
    ref = _need(p, data, "pos_pred_src", (NUM_JOINTS, 2, n)) if "pos_pred_src" in data else None
    head = np.linalg.norm(boxes[1] - boxes[0], axis=0) * SC_BIAS  # official: norm, then × SC_BIAS
    return MPIIGroundTruth(
        joints=gt.transpose(2, 0, 1)[:, order],
        visible=(1.0 - missing).T[:, order],
        headboxes=boxes.transpose(2, 0, 1),
        head_size=head,
        reference_preds=None if ref is None else ref.transpose(2, 0, 1)[:, order],
    )


def read_preds_mat(path: str | os.PathLike) -> np.ndarray:
    """Predictions (N, 16, 2), 1-based, from ``preds`` (N×16×2) or ``pos_pred_src`` (16×2×N).

    ``pos_pred_src`` follows the file's ``dataset_joints`` order when present.
    """
    p = str(path)
    data = _load_mat(p)
    if "preds" in data:
        return _need(p, data, "preds", (None, NUM_JOINTS, 2))
    if "pos_pred_src" in data:
        order = _joint_order(p, data.get("dataset_joints"))
        return _need(p, data, "pos_pred_src", (NUM_JOINTS, 2, None)).transpose(2, 0, 1)[:, order]
    raise HGCError(f"{p}: no predictions: expected variable 'preds' (N×16×2) or 'pos_pred_src' (16×2×N)")


def score_preds_mat(preds_path: str | os.PathLike, gt_path: str | os.PathLike) -> PCKhResult:
    """Score a predictions .mat against the official ground truth exactly as eval_PCKh does.

    Accepts ``preds`` or ``pos_pred_src`` (so the reference predictions stored in the gt file itself
    can be scored by passing that file twice).
    """
    gt = read_gt_mat(gt_path)
    preds = read_preds_mat(preds_path)
    if preds.shape[0] != gt.joints.shape[0]:
        raise HGCError(f"{preds_path}: {preds.shape[0]} predictions, but {gt_path} has "
                       f"{gt.joints.shape[0]} records")
    return evaluate_predictions(preds, gt.joints, gt.visible, gt.head_size)
