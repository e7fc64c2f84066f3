"""PCKh with the official MPII ``eval_PCKh`` semantics (compress/ARCHITECTURE.md §Metrics).

error = ‖pred − gt‖ / head_size with head_size = 0.6 · ‖head-box diagonal‖; a joint is correct iff
error < threshold (strict, as the official script; HRNet's port uses ≤); only annotated joints count;
columns average left/right; Mean is the UNWEIGHTED mean of the 14 per-joint values without pelvis and
thorax (HRNet instead weights joints by their annotation counts). Mean@0.1 uses threshold 0.1 exactly
(HRNet reports row 11 of its grid, i.e. 0.11).

AUC: the Mean PCKh curve on the 51 thresholds 0, 0.01, …, 0.50 (``np.linspace(0, 0.5, 51)``), integrated
with the trapezoid rule and divided by 0.5, so it is a percentage like the other columns. At t = 0 the
strict rule would count nothing; the curve uses its right-limit there (error == 0 counts), which is the
value the integral needs: perfect predictions give AUC 100, real ones are unaffected.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .data.skeleton import JOINT_NAMES, MEAN_JOINTS, NUM_JOINTS, PCKH_COLUMNS
from .errors import HGCError

AUC_THRESHOLDS = np.linspace(0.0, 0.5, 51)
TABLE_COLUMNS: tuple[str, ...] = (*PCKH_COLUMNS, "Mean")


def _check_inputs(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray,
                  head_size: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    visible = np.asarray(visible)
    head_size = np.asarray(head_size, dtype=np.float64).reshape(-1)
    n = gt.shape[0] if gt.ndim == 3 else -1
    if gt.shape != (n, NUM_JOINTS, 2):
        raise HGCError(f"PCKh: ground truth must have shape (N, {NUM_JOINTS}, 2), got {gt.shape}")
    if pred.shape != gt.shape:
        raise HGCError(f"PCKh: predictions have shape {pred.shape}, ground truth {gt.shape}")
    if visible.shape != (n, NUM_JOINTS):
        raise HGCError(f"PCKh: visible must have shape ({n}, {NUM_JOINTS}), got {visible.shape}")
    if head_size.shape != (n,):
        raise HGCError(f"PCKh: head_size must have shape ({n},), got {head_size.shape}")
    counted = visible > 0
    bad = counted.any(axis=1) & ~(np.isfinite(head_size) & (head_size > 0))
    if bad.any():
        raise HGCError(f"PCKh: {int(bad.sum())} samples with annotated joints have no valid head size "
                       f"(first: sample {int(np.flatnonzero(bad)[0])}); a layout without head boxes "
                       "must be scored against the official ground-truth .mat")
    return pred, gt, counted, head_size


def normalized_errors(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray,
                      head_size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(errors (N,16) = ‖pred − gt‖ / head_size, counted (N,16) bool) for the PCKh computations.

    Same floating-point steps as the official script (2-norm over x/y, then divide), so results match bit for bit.
    """
    pred, gt, counted, head_size = _check_inputs(pred, gt, visible, head_size)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.linalg.norm(pred - gt, axis=2) / head_size[:, None]
    return err, counted


def _pck_at(err: np.ndarray, counted: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(T, 16) PCKh in % for each threshold; NaN where a joint has no annotated instance."""
    t = thresholds[:, None, None]
    # Strict <, except at t = 0 where the curve takes its right-limit (error == 0 counts), so a perfect
    # prediction integrates to exactly 100. NaN errors count as wrong.
    hits = ((err[None] < t) | ((t == 0) & (err[None] <= 0))) & counted[None]
    total = counted.sum(axis=0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100.0 * hits.sum(axis=1) / total[None]


def pckh(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, head_size: np.ndarray,
         threshold: float = 0.5) -> np.ndarray:
    """Per-joint PCKh (16,) in % at ``threshold``; NaN for a joint no sample annotates.

    head_size already includes the 0.6 factor; correct iff error < threshold (strict).
    """
    err, counted = normalized_errors(pred, gt, visible, head_size)
    return _pck_at(err, counted, np.array([threshold], dtype=np.float64))[0]


def _nanmean(values: np.ndarray) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def mean_pckh(per_joint: np.ndarray) -> float:
    """Official Mean: unweighted mean over the 14 joints without pelvis and thorax.

    Joints with no annotated instance (NaN) are left out; the official data set has none.
    """
    return _nanmean(np.asarray(per_joint)[list(MEAN_JOINTS)])


def column_values(per_joint: np.ndarray) -> dict[str, float]:
    """Head, Shoulder, …, Ankle (left/right averaged) and Mean from a (16,) per-joint array."""
    out = {name: _nanmean(np.asarray(per_joint)[list(joints)]) for name, joints in PCKH_COLUMNS.items()}
    out["Mean"] = mean_pckh(per_joint)
    return out


@dataclass
class PCKhResult:
    """Per-joint PCKh at 0.5 and 0.1, the Mean curve over ``AUC_THRESHOLDS`` and its AUC.

    One object the CLI prints, reports store (``to_dict``) and tests compare.
    """

    per_joint: np.ndarray  # (16,) PCKh@0.5 in %
    per_joint_01: np.ndarray  # (16,) PCKh@0.1 in %
    counts: np.ndarray  # (16,) annotated instances per joint
    curve: np.ndarray = field(default_factory=lambda: np.zeros(0))  # Mean PCKh at each AUC threshold
    thresholds: np.ndarray = field(default_factory=lambda: AUC_THRESHOLDS.copy())

    @property
    def mean(self) -> float:
        """Mean PCKh@0.5 (official: unweighted over 14 joints)."""
        return mean_pckh(self.per_joint)

    @property
    def mean_01(self) -> float:
        """Mean PCKh@0.1, same averaging as ``mean``."""
        return mean_pckh(self.per_joint_01)

    @property
    def auc(self) -> float:
        """Area under the Mean-PCKh curve over thresholds 0..0.5 (trapezoid), in %."""
        if self.curve.size < 2:
            return float("nan")
        x = self.thresholds
        return float(np.sum((self.curve[1:] + self.curve[:-1]) * np.diff(x)) / 2.0 / (x[-1] - x[0]))

    def table(self) -> dict[str, float]:
        """The standard MPII columns at PCKh@0.5: Head … Ankle and Mean."""
        return column_values(self.per_joint)

    def to_dict(self) -> dict:
        """JSON-able summary: table columns, Mean@0.1, AUC, per-joint values and counts."""
        def clean(x: float) -> float | None:
            return None if not np.isfinite(x) else round(float(x), 6)

        out: dict = {k: clean(v) for k, v in self.table().items()}
        out["Mean@0.1"] = clean(self.mean_01)
        out["AUC"] = clean(self.auc)
        out["per_joint"] = {n: clean(v) for n, v in zip(JOINT_NAMES, self.per_joint)}
        out["per_joint@0.1"] = {n: clean(v) for n, v in zip(JOINT_NAMES, self.per_joint_01)}
        out["counts"] = {n: int(c) for n, c in zip(JOINT_NAMES, self.counts)}
        return out

    def format_table(self) -> str:
        """Aligned two-line text table: the columns above plus Mean@0.1 and AUC (2 decimals)."""
        values = {**self.table(), "Mean@0.1": self.mean_01, "AUC": self.auc}
        widths = [max(len(k), 6) for k in values]
        head = "  ".join(k.rjust(w) for k, w in zip(values, widths))
        row = "  ".join(f"{v:.2f}".rjust(w) for v, w in zip(values.values(), widths))
        return f"{head}\n{row}"


def evaluate_predictions(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray,
                         head_size: np.ndarray) -> PCKhResult:
    """Full PCKh evaluation (0.5, 0.1 and the AUC curve) of (N,16,2) predictions against ground truth.

    All thresholds share one error computation.
    """
    return result_from_errors(*normalized_errors(pred, gt, visible, head_size))


def result_from_errors(err: np.ndarray, counted: np.ndarray) -> PCKhResult:
    """``evaluate_predictions`` from ``normalized_errors``' output, for callers that keep the errors too."""
    grid = np.concatenate([[0.5, 0.1], AUC_THRESHOLDS])
    per = _pck_at(err, counted, grid)
    curve = np.array([mean_pckh(row) for row in per[2:]])
    return PCKhResult(per_joint=per[0], per_joint_01=per[1], counts=counted.sum(axis=0),
                      curve=curve, thresholds=AUC_THRESHOLDS.copy())
