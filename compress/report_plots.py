"""The report's figures: PCKh against latency or size with the pareto front, and PCKh and latency against MACs.

Drawn on matplotlib's Agg canvas directly (no GUI backend is touched); each figure returns PNG and SVG bytes.
The MACs figure shows what a MACs count hides: two models of equal MACs (``round_to`` 1 vs 16 pruning, say)
can differ several-fold in measured latency.
"""
from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def short_label(run: str) -> str:
    """Plot label of a run: ``ft@steps.0.finetune.steps=10`` → ``ft@steps=10``.

    Full override paths would crowd the plots; the last path segment names the swept setting.
    """
    name, at, rest = run.partition("@")
    if not at or "=" not in rest:
        return run
    return name + "@" + ",".join(f"{k.split('.')[-1]}={v}" for k, _, v in (p.partition("=") for p in rest.split(",")))


def _png_and_svg(fig: Figure) -> tuple[bytes, bytes]:
    """A laid-out figure as PNG and SVG bytes (the SVG without a date, so reruns give identical files)."""
    fig.tight_layout()
    png, svg = io.BytesIO(), io.BytesIO()
    fig.savefig(png, format="png")
    fig.savefig(svg, format="svg", metadata={"Date": None})
    return png.getvalue(), svg.getvalue()


def plot(frame: pd.DataFrame, x: str, xlabel: str, title: str, front: str, baseline: str | None,
         floor: float | None, floor_label: str = "max-drop floor") -> tuple[bytes, bytes]:
    """PCKh (y) against ``x`` (log scale): runs labelled, the pareto front as a staircase, baseline starred.

    Returns (PNG, SVG) bytes; matplotlib's Agg canvas is used directly, no GUI backend is touched.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(8, 5.2), dpi=130)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    pts = frame[frame[x].notna() & frame.pckh.notna() & (frame[x] > 0)]
    on, off = pts[pts[front]], pts[~pts[front]]
    ax.scatter(off[x], off.pckh, s=36, color="0.6", label="dominated", zorder=3)
    ax.scatter(on[x], on.pckh, s=44, color="tab:blue", label="pareto front", zorder=4)
    line = on.sort_values(x)
    if len(line) > 1:
        ax.plot(line[x], line.pckh, drawstyle="steps-post", color="tab:blue", alpha=0.6, zorder=2)
    base = pts[pts.run == baseline] if baseline else pts.iloc[0:0]
    if len(base):
        ax.scatter(base[x], base.pckh, s=260, marker="*", facecolor="none", edgecolor="tab:red", linewidth=1.6,
                   label="baseline" if baseline == "baseline" else f"baseline ({baseline})", zorder=5)
    show_floor = floor is not None and math.isfinite(floor) and floor >= 0
    if show_floor:
        ax.axhline(floor, color="tab:red", linestyle=":", linewidth=1, label=floor_label, zorder=1)
    for i, (_, r) in enumerate(pts.iterrows()):
        ax.annotate(r.label, (r[x], r.pckh), xytext=(6, 4 if i % 2 == 0 else -10),
                    textcoords="offset points", fontsize=8, color="0.15")
    ax.set_xscale("log")
    if len(pts):
        lo, hi = float(pts[x].min()), float(pts[x].max())
        narrow = hi / lo < 3
        ax.set_xlim(lo / (1.15 if narrow else 1.5), hi * (1.6 if narrow else 2.5))  # room for labels on the right
        ylo, yhi = float(pts.pckh.min()), float(pts.pckh.max())
        ylo = min(ylo, floor) if show_floor else ylo
        pad = max(0.5, (yhi - ylo) * 0.12)
        ax.set_ylim(max(0.0, ylo - pad), min(100.0, yhi + pad) if yhi < 100 else yhi + pad)
    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    every = len(pts) and float(pts[x].max()) / float(pts[x].min()) < 10  # < a decade: label every minor tick
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _pos: f"{v:g}" if every or f"{v:.0e}"[0] in "25" else ""))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("PCKh@0.5 (mean, %)")
    ax.set_title(title, fontsize=11)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="lower right")
    return _png_and_svg(fig)


def plot_macs(frame: pd.DataFrame, baseline: str | None, latency_label: str, runtime: str | None = None
              ) -> tuple[bytes, bytes] | None:
    """Two panels over MACs (log x): PCKh@0.5 (left) and p50 latency (right), one point per run, labelled.

    The latency panel shows ``runtime``'s p50 only (default: each run's first row), so it never mixes
    runtimes. None when fewer than two runs have distinct MACs: there is nothing to compare.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    pts = frame[frame.macs.notna() & (frame.macs > 0)].drop_duplicates("run")
    if pts.macs.nunique() < 2:
        return None
    pts = pts.assign(label=[short_label(str(r)) for r in pts.run])  # one runtime per panel: no runtime tags
    if runtime is not None and "runtime" in frame:  # a run this runtime did not time has no latency point
        timed = frame[frame.runtime == runtime].drop_duplicates("run").set_index("run").latency_ms
        pts = pts.assign(latency_ms=pts.run.map(timed))
    mmacs = pts.macs / 1e6
    fig = Figure(figsize=(11, 4.6), dpi=130)
    FigureCanvasAgg(fig)
    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    for k, (column, ylabel) in enumerate((("pckh", "PCKh@0.5 (mean, %)"), ("latency_ms", latency_label))):
        ax = fig.add_subplot(1, 2, k + 1)
        ok = pts[column].notna() & (pts[column] > 0)
        if not ok.any():
            ax.text(0.5, 0.5, "not timed", ha="center", va="center", transform=ax.transAxes, color="0.4")
        ax.scatter(mmacs[ok], pts[column][ok], s=36, color="tab:blue", zorder=3)
        base = ok & (pts.run == baseline)
        ax.scatter(mmacs[base], pts[column][base], s=220, marker="*", facecolor="none", edgecolor="tab:red",
                   linewidth=1.5, zorder=4, label="baseline")
        for i, (x, y, label) in enumerate(zip(mmacs[ok], pts[column][ok], pts.label[ok])):
            ax.annotate(label, (x, y), xytext=(5, 4 if i % 2 == 0 else -10), textcoords="offset points", fontsize=7)
        ax.set_xscale("log")
        if column == "latency_ms" and ok.any():
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(plain)
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _pos: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
        ax.set_xlim(float(mmacs.min()) / 1.3, float(mmacs.max()) * 1.8)
        ax.set_xlabel("MMACs per image (log)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.25)
        if base.any():
            ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("PCKh and latency against MACs: equal MACs need not mean equal speed", fontsize=11)
    return _png_and_svg(fig)


def plot_curves(curves: pd.DataFrame) -> tuple[bytes, bytes] | None:
    """Validation PCKh against training steps, one line per run (None without a curve)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if curves.empty:
        return None
    fig = Figure(figsize=(8, 5.2), dpi=130)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for run, points in curves.groupby("run", sort=True):
        points = points.sort_values("step")
        ax.plot(points.step, points.pckh, marker="o", markersize=3, linewidth=1.2, label=short_label(str(run)))
    ax.set_xlabel("training steps of the run (blockwise steps included)")
    ax.set_ylabel("validation PCKh@0.5 (curve samples, %)")
    ax.set_title("PCKh against training steps", fontsize=11)
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize=7, loc="lower right")
    return _png_and_svg(fig)
