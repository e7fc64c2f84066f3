"""Prune the big model, or swap to a smaller design? Each swap student against pruning at equal MACs.

The question users ask first when a net must get cheaper. Structured pruning of the baseline gives a curve
of (MACs, PCKh, latency) points: the baseline itself at full MACs and every fp32 run whose steps prune it
without changing its design (no ``swap``, no quantization, sparsity or weight sharing, which change
size or precision, not MACs), reduced to its upper envelope: a pruned run that a cheaper one out-scores
is not what pruning to its MACs would give (``pruning_curve``). Every
fp32 swap student whose MACs lie inside the curve's range is compared with the curve interpolated linearly
in MACs between its two neighbouring points, on one runtime. Above the envelope's costliest point, up to
the baseline's MACs, pruning already gave a cheaper model at least as accurate as anything costlier: the
student meets that point. A student below the range is listed with the nearest pruned point and no
verdict, since an extrapolated curve would be a guess.

Both sides are read as trained: the table shows each side's optimizer steps, because a pruned run that
trained four times longer than a student is not an equal-budget comparison (the report says so per row).
"""
from __future__ import annotations

import html
import math
from collections.abc import Callable

import pandas as pd

TITLE = "Prune or swap, at equal MACs"
NOT_PRUNING = ("swap", "quantize", "sparsify", "cluster", "hash", "pack")
LEGEND = ("Each fp32 swap student against structured pruning of the baseline at the student's MACs, on one "
          "runtime: `pruned PCKh` and `pruned p50 ms` interpolate linearly in MACs between the two pruned "
          "points (or the baseline) around it (`between`; pruned runs that a cheaper one out-scores are left out). "
          "ΔPCKh = student − pruned; ×faster = pruned p50 / student p50. `verdict` names the side that is at "
          "least as accurate and as fast, or the trade when neither is. `train steps`: optimizer steps each "
          "side trained (pruned: of the points around it; a run that continues an earlier run's checkpoint "
          "counts that run's steps too); unequal budgets favour the longer side. A student "
          "between the envelope's costliest point and the baseline's MACs meets that point (`≤`: cheaper, and "
          "at least as accurate as every costlier pruned run); one below the pruned range gets the nearest "
          "pruned point and no verdict.")


def _ops(steps: str) -> set[str]:
    return {s.strip() for s in str(steps).split("→")} - {"(none)", ""}


def pruning_curve(frame: pd.DataFrame, runtime: str | None, baseline: str | None) -> pd.DataFrame:
    """Points (macs, pckh, latency_ms, run, train_steps) of the baseline and its fp32 pruned runs, by MACs.

    The upper envelope: a point stays only if it is more accurate than every point with fewer MACs (a
    pruned run that a cheaper one beats is not what pruning to its MACs would give), and at equal MACs
    (within 1 %) the more accurate row stands.
    """
    return _envelope(_candidates(frame, runtime, baseline))


def _envelope(candidates: pd.DataFrame) -> pd.DataFrame:
    points = candidates.sort_values(["macs", "pckh"], ascending=[True, False])
    chosen: list[pd.Series] = []
    for _, p in points.iterrows():  # by MACs: keep a point only if it beats every cheaper one
        if not chosen or p.pckh > chosen[-1].pckh:
            if chosen and p.macs <= 1.01 * chosen[-1].macs:  # the same MACs level: the more accurate one
                chosen.pop()
            chosen.append(p)
    cols = ["run", "macs", "pckh", "latency_ms", "train_steps"]
    return pd.DataFrame([c[cols] for c in chosen], columns=cols).reset_index(drop=True)


def _candidates(frame: pd.DataFrame, runtime: str | None, baseline: str | None) -> pd.DataFrame:
    """The baseline and its fp32 pruned runs on ``runtime`` (before the envelope drops any)."""
    rows = frame[(frame.runtime == runtime) if runtime is not None else frame.runtime.isna()]
    rows = rows[(rows.artifact_precision.fillna("fp32") == "fp32") & rows.macs.notna()]
    keep = [(r == baseline) or ("prune" in _ops(s) and not _ops(s) & set(NOT_PRUNING))
            for r, s in zip(rows.run, rows.steps)]
    return rows[keep]


def _between(curve: pd.DataFrame, macs: float) -> tuple[pd.Series, pd.Series] | None:
    below = curve[curve.macs <= macs]
    above = curve[curve.macs >= macs]
    if below.empty or above.empty:
        return None
    return below.iloc[-1], above.iloc[0]


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


def _verdict(d_pckh: float, x_faster: float) -> str:
    if not (math.isfinite(d_pckh) and math.isfinite(x_faster)):
        return "swap more accurate" if d_pckh > 0 else "prune more accurate" if d_pckh < 0 else ""
    if d_pckh >= 0 and x_faster >= 1:
        return "swap"
    if d_pckh <= 0 and x_faster <= 1:
        return "prune"
    return "swap: more accurate, slower" if d_pckh > 0 else "swap: faster, less accurate"


def prune_vs_swap(frame: pd.DataFrame, runtime: str | None, baseline: str | None) -> pd.DataFrame:
    """One row per fp32 swap student on ``runtime``: the student, pruning at its MACs, and which wins.

    ``frame`` is the analysed report table (one row per (run, runtime)); empty without a swap student or
    without a pruned run.
    """
    candidates = _candidates(frame, runtime, baseline)
    curve = _envelope(candidates)
    rows = frame[(frame.runtime == runtime) if runtime is not None else frame.runtime.isna()]
    students = rows[[("swap" in _ops(s) and not _ops(s) & {"prune", *NOT_PRUNING[1:]})
                     and (p or "fp32") == "fp32" and m == m
                     for s, p, m in zip(rows.steps, rows.artifact_precision, rows.macs)]]
    if students.empty or len(curve) < 2:
        return pd.DataFrame()
    top = candidates.macs.max()  # the baseline's MACs, unless a pruned run has more
    out = []
    for _, s in students.sort_values("macs").iterrows():
        pair = _between(curve, s.macs)
        dominated = pair is None and curve.macs.iloc[-1] < s.macs <= top
        if dominated:  # every costlier pruned point is out-scored by the envelope's last: pruning gives that
            lo = hi = curve.iloc[-1]
            t, inside = 0.0, True
        elif pair is None:
            near = curve.iloc[(curve.macs - s.macs).abs().argmin()]
            lo = hi = near
            t, inside = 0.0, False
        else:
            lo, hi = pair
            t = 0.0 if hi.macs == lo.macs else (s.macs - lo.macs) / (hi.macs - lo.macs)
            inside = True
        pckh = _lerp(lo.pckh, hi.pckh, t)
        latency = _lerp(lo.latency_ms, hi.latency_ms, t)
        d_pckh = s.pckh - pckh
        x_faster = latency / s.latency_ms if s.latency_ms and math.isfinite(s.latency_ms) else math.nan
        between = f"≤ {lo.run}" if dominated else lo.run if lo.run == hi.run else f"{lo.run} … {hi.run}"
        steps = (f"{int(lo.train_steps):,}" if lo.run == hi.run or lo.train_steps == hi.train_steps
                 else f"{int(lo.train_steps):,}–{int(hi.train_steps):,}")
        out.append({"student": s.run, "MMACs": s.macs / 1e6, "PCKh@0.5": s.pckh, "p50 ms": s.latency_ms,
                    "train steps": f"{int(s.train_steps):,}", "between": between if inside else f"nearest: {between}",
                    "pruned MMACs": f"{lo.macs / 1e6:.0f}–{hi.macs / 1e6:.0f}" if inside else f"{lo.macs / 1e6:.0f}",
                    "pruned PCKh": pckh, "pruned p50 ms": latency, "pruned train steps": steps,
                    "ΔPCKh": d_pckh, "×faster": x_faster,
                    "verdict": _verdict(d_pckh, x_faster) if inside else "(outside the pruned range)"})
    return pd.DataFrame(out)


def _shown(table: pd.DataFrame) -> pd.DataFrame:
    shown = table.copy()
    for col, fmt in (("MMACs", "{:.1f}"), ("PCKh@0.5", "{:.2f}"), ("p50 ms", "{:.3g}"), ("pruned PCKh", "{:.2f}"),
                     ("pruned p50 ms", "{:.3g}"), ("ΔPCKh", "{:+.2f}"), ("×faster", "{:.2f}×")):
        shown[col] = [fmt.format(v) if isinstance(v, float) and math.isfinite(v) else "" for v in shown[col]]
    return shown


def versus_section(table: pd.DataFrame, runtime: str | None, markdown: Callable[[pd.DataFrame], str]) -> list[str]:
    """Markdown lines of the section (nothing without a student and a pruning curve)."""
    if table.empty:
        return []
    return [f"## {TITLE}", "", f"Runtime: `{runtime}`.", "", markdown(_shown(table)), "", LEGEND, ""]


def versus_html(table: pd.DataFrame, runtime: str | None) -> str:
    """The same section as HTML (empty without rows)."""
    if table.empty:
        return ""
    return (f"<h2>{html.escape(TITLE)}</h2><p>Runtime: {html.escape(str(runtime))}.</p>"
            + _shown(table).to_html(index=False, escape=True, border=0)
            + f"<p>{html.escape(LEGEND).replace('`', '')}</p>")
