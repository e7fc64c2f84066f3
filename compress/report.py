"""Reports: many runs' ``results.json`` → one table with ratios vs the baseline, pareto fronts and plots.

``build_report`` reads every row first (a missing or corrupt file is one ``HGCError`` and nothing is
written), then writes ``results.csv``, ``report.md``, a self-contained ``report.html`` and the plots
``pckh_vs_latency``/``pckh_vs_size`` (PNG and SVG, log x, front drawn, baseline starred).
"""
from __future__ import annotations

import base64
import html
import io
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from compress.errors import HGCError
from compress.io import atomic_path
from compress.pareto import pareto_front
from compress.results import latency_column, results_table


@dataclass
class Report:
    """What ``build_report`` chose and wrote."""

    out: str
    table: pd.DataFrame
    baseline: str | None
    latency: str
    smallest: str | None = None
    fastest: str | None = None
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _pick_latency(frame: pd.DataFrame, runtime: str | None, batch: int | None) -> str:
    columns = [c for c in frame.columns if c.startswith("p50_ms:")]
    runtimes = sorted({c.split(":")[1] for c in columns})
    if runtime is None:
        counts = Counter(c.split(":")[1] for c in columns for _ in range(int(frame[c].notna().sum())))
        runtime = "onnxruntime-cpu" if "onnxruntime-cpu" in runtimes else (counts.most_common(1) or [("", 0)])[0][0]
    if runtime not in runtimes:
        raise HGCError(f"--runtime {runtime}: no run was timed with it (timed: {', '.join(runtimes) or 'none'})")
    batches = sorted(int(c.rsplit(":b", 1)[1]) for c in columns if c.split(":")[1] == runtime)
    if batch is None:
        batch = 1 if 1 in batches else batches[0]
    if batch not in batches:
        raise HGCError(f"--batch {batch}: {runtime} was timed at batch {', '.join(map(str, batches))}")
    return latency_column(runtime, batch)


def _pick_baseline(frame: pd.DataFrame, baseline: str | None) -> str | None:
    if baseline is not None:
        if baseline not in set(frame.run):
            raise HGCError(f"--baseline {baseline}: no such run (runs: {', '.join(frame.run)})")
        return baseline
    named = frame[frame.run == "baseline"]
    plain = frame[frame.n_steps == 0]
    chosen = named if len(named) else plain
    return str(chosen.run.iloc[0]) if len(chosen) else None


def analyse(frame: pd.DataFrame, latency: str, baseline: str | None, max_drop: float) -> tuple[pd.DataFrame, str | None, str | None, str]:
    """Add ratio, Δ and front columns; return (table, smallest, fastest, reference) within ``max_drop``.

    The reference is the baseline, or the most accurate run when there is none.
    """
    frame = frame.copy()
    lat = frame[latency] if latency in frame else pd.Series(math.nan, index=frame.index)
    frame["latency_ms"] = lat
    frame["front_latency"] = pareto_front(frame, maximize="pckh", minimize="latency_ms")
    frame["front_size"] = pareto_front(frame, maximize="pckh", minimize="bytes")
    frame["front"] = [", ".join(n for n, on in (("latency", a), ("size", b)) if on)
                      for a, b in zip(frame.front_latency, frame.front_size)]
    if baseline is not None:
        base = frame[frame.run == baseline].iloc[0]
        frame["x_smaller"] = base.bytes / frame.bytes
        frame["x_faster"] = base.latency_ms / frame.latency_ms
        frame["d_pckh"] = frame.pckh - base.pckh
        ref_name, ref = baseline, base.pckh
    else:
        frame["x_smaller"] = frame["x_faster"] = frame["d_pckh"] = math.nan
        best = frame.loc[frame.pckh.idxmax()] if frame.pckh.notna().any() else None
        ref_name, ref = (str(best.run), best.pckh) if best is not None else ("", math.nan)
    eligible = frame[frame.pckh >= ref - max_drop]
    smallest = str(eligible.loc[eligible.bytes.idxmin()].run) if len(eligible) else None
    timed = eligible[eligible.latency_ms.notna()]
    fastest = str(timed.loc[timed.latency_ms.idxmin()].run) if len(timed) else None
    order = frame.run.map(lambda r: 0 if r == baseline else 1)
    frame = frame.assign(_o=order).sort_values(["_o", "pckh"], ascending=[True, False]).drop(columns="_o")
    return frame.reset_index(drop=True), smallest, fastest, ref_name


def short_label(run: str) -> str:
    """Plot label of a run: ``ft@steps.0.finetune.steps=10`` → ``ft@steps=10``.

    Full override paths would crowd the plots; the last path segment names the swept setting.
    """
    name, at, rest = run.partition("@")
    if not at or "=" not in rest:
        return run
    return name + "@" + ",".join(f"{k.split('.')[-1]}={v}" for k, _, v in (p.partition("=") for p in rest.split(",")))


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
        ax.annotate(short_label(r.run), (r[x], r.pckh), xytext=(6, 4 if i % 2 == 0 else -10),
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
    fig.tight_layout()
    png, svg = io.BytesIO(), io.BytesIO()
    fig.savefig(png, format="png")
    fig.savefig(svg, format="svg", metadata={"Date": None})
    return png.getvalue(), svg.getvalue()


DISPLAY = {"run": "run", "steps": "steps", "precision": "precision", "pckh": "PCKh@0.5", "d_pckh": "ΔPCKh",
           "pckh01": "PCKh@0.1", "auc": "AUC", "params": "params", "macs": "MMACs", "bytes": "MB",
           "gzip_bytes": "gzip MB", "x_smaller": "×smaller", "latency_ms": "p50 ms", "x_faster": "×faster",
           "front": "front"}


def display_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The human table: rounded numbers, sizes in MB, MACs in millions, blank for missing values.

    ``results.csv`` keeps the raw numbers; this is what markdown and HTML show.
    """
    shown = frame[list(DISPLAY)].copy()
    shown["macs"] = shown.macs / 1e6
    shown["bytes"] = shown.bytes / 1e6
    shown["gzip_bytes"] = shown.gzip_bytes / 1e6
    fmt = {"pckh": "{:.2f}", "d_pckh": "{:+.2f}", "pckh01": "{:.2f}", "auc": "{:.2f}", "params": "{:,.0f}",
           "macs": "{:.1f}", "bytes": "{:.3f}", "gzip_bytes": "{:.3f}", "x_smaller": "{:.2f}×",
           "latency_ms": "{:.3g}", "x_faster": "{:.2f}×"}
    for col, spec in fmt.items():
        shown[col] = [spec.format(v) if isinstance(v, (int, float)) and math.isfinite(v) else "" for v in shown[col]]
    return shown.rename(columns=DISPLAY)


def _markdown_table(frame: pd.DataFrame) -> str:
    cells = [[str(c) for c in frame.columns]] + [[str(v).replace("|", "\\|") for v in row] for row in frame.values]
    lines = ["| " + " | ".join(r) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("---" for _ in frame.columns) + "|")
    return "\n".join(lines)


def _summary(rep: Report, frame: pd.DataFrame, max_drop: float, reference: str) -> list[str]:
    lines = []
    for label, run in (("smallest", rep.smallest), ("fastest", rep.fastest)):
        if run is None:
            lines.append(f"- {label}: no run within {max_drop:g} PCKh of {reference or 'the best run'}")
            continue
        r = frame[frame.run == run].iloc[0]
        ratio = r.x_smaller if label == "smallest" else r.x_faster
        extra = f", {ratio:.2f}× {'smaller' if label == 'smallest' else 'faster'}" if math.isfinite(ratio) else ""
        delta = f" ({r.d_pckh:+.2f})" if math.isfinite(r.d_pckh) else ""
        lines.append(f"- **{label}**: `{run}` — {r.bytes / 1e6:.3f} MB, {r.latency_ms:.3g} ms, "
                     f"PCKh@0.5 {r.pckh:.2f}{delta}{extra}")
    return lines


def _texts(rep: Report, frame: pd.DataFrame, runs: Sequence[str], max_drop: float, reference: str,
           images: dict[str, bytes]) -> tuple[str, str]:
    """(report.md, report.html) from the analysed table; the HTML embeds the PNGs as base64."""
    table = display_table(frame)
    head = [f"{len(frame)} runs from {', '.join(map(str, runs))}.",
            f"Baseline: `{rep.baseline}`." if rep.baseline else "No baseline run (ratios are blank; "
            "name one with --baseline or include a run without steps).",
            f"Latency: p50 of `{rep.latency.split(':')[1]}` at batch {rep.latency.rsplit(':b', 1)[1]}."]
    summary = _summary(rep, frame, max_drop, reference)
    notes = [f"- ⚠ {n}" for n in rep.notes]
    legend = ("`front`: on the PCKh-vs-latency and/or PCKh-vs-size pareto front (no other run is at least as "
              "accurate and at least as small/fast, and strictly better in one). ×smaller = baseline bytes / "
              "bytes; ×faster = baseline p50 / p50; ΔPCKh = PCKh − baseline PCKh.")
    md = "\n".join(["# Compression report", "", *head, "", *([*notes, ""] if notes else []),
                    f"## Within {max_drop:g} PCKh of `{reference}`", "", *summary, "", "## Runs", "",
                    _markdown_table(table), "", legend, "", *_quant_section(frame), "## Plots", "",
                    "![PCKh vs latency](pckh_vs_latency.png)", "", "![PCKh vs size](pckh_vs_size.png)", ""])
    imgs = "".join(f'<figure><img alt="{html.escape(n)}" src="data:image/png;base64,'
                   f'{base64.b64encode(b).decode()}"></figure>' for n, b in images.items())
    style = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;"
             "text-align:right}td:nth-child(-n+3),th{text-align:left}img{max-width:100%}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>Compression report</title>"
            f"<style>{style}</style></head><body><h1>Compression report</h1>"
            + "".join(f"<p>{html.escape(h).replace('`', '')}</p>" for h in head)
            + "".join(f"<p>⚠ {html.escape(n)}</p>" for n in rep.notes)
            + f"<h2>Within {max_drop:g} PCKh of {html.escape(reference)}</h2><ul>"
            + "".join(f"<li>{html.escape(s[2:]).replace('**', '').replace('`', '')}</li>" for s in summary)
            + "</ul><h2>Runs</h2>" + table.to_html(index=False, escape=True, border=0)
            + f"<p>{html.escape(legend).replace('`', '')}</p><h2>Plots</h2>{imgs}</body></html>\n")
    return md, page


def _quant_section(frame: pd.DataFrame) -> list[str]:
    """Markdown lines: per int8 run, the convs that run as int8 kernels and the ops left in float."""
    rows = frame[frame.int8_convs.notna() & (frame.precision == "int8")]
    if rows.empty:
        return []
    lines = ["## int8 kernels (onnxruntime's optimized graph)", "",
             "| run | int8 convs / conv layers | BatchNorms as int8 convs | layers kept fp32 | ops left in float |",
             "|---|---|---|---|---|"]

    def count(v: Any) -> str:
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(int(v))

    for r in rows.itertuples():
        lines.append(f"| {r.run} | {count(r.int8_convs)} / {count(r.conv_layers)} | {count(r.int8_norm_convs)} | "
                     f"{count(r.fp32_layers)} | {r.float_ops if isinstance(r.float_ops, str) else '—'} |")
    return lines + ["", "Ops left in float, why: a conv kept fp32 (sensitivity or exclude) and the ops fed by "
                    "it; a residual Add kept fp32 and the ops that carry its float stream on (the next Add, "
                    "MaxPool, Resize; the convs reading it stay int8); ConvTranspose has no int8 CPU kernel; "
                    "in-graph input normalisation runs on the float image. Each run's `metrics.json` of its "
                    "quantize step lists the reasons per op type.", ""]


def _notes(frame: pd.DataFrame) -> list[str]:
    notes = []
    if frame.quick.any():
        notes.append(f"{int(frame.quick.sum())} run(s) used --quick (training cut to 1 %, few samples, few "
                     "timed runs): smoke-test numbers, not results")
    cpus = sorted({str(c) for c in frame.cpu.dropna()})
    if len(cpus) > 1:
        notes.append(f"latencies come from different machines ({'; '.join(cpus)}): ratios are not comparable")
    return notes


def build_report(runs: Sequence[str], out: str, max_drop: float = 1.0, runtime: str | None = None,
                 batch: int | None = None, baseline: str | None = None) -> Report:
    """Collect every results.json under ``runs`` and write the report files into ``out``.

    ``runtime``/``batch`` choose the latency column the front and ×faster use (default onnxruntime-cpu,
    batch 1); ``max_drop`` names the smallest and the fastest run within that PCKh drop of the baseline.
    """
    if not max_drop >= 0:
        raise HGCError(f"--max-drop {max_drop}: must be ≥ 0")
    raw = results_table(runs)
    latency = _pick_latency(raw, runtime, batch)
    base = _pick_baseline(raw, baseline)
    frame, smallest, fastest, reference = analyse(raw, latency, base, max_drop)
    rep = Report(out=str(out), table=frame, baseline=base, latency=latency, smallest=smallest, fastest=fastest,
                 notes=_notes(frame))
    ref = frame[frame.run == reference].pckh
    floor = float(ref.iloc[0]) - max_drop if len(ref) else None
    floor_label = f"{reference} − {max_drop:g} PCKh (--max-drop)"
    _, rt, b = latency.split(":")
    plots = {"pckh_vs_latency": plot(frame, "latency_ms", f"p50 latency, {rt} batch {b[1:]} (ms, log)",
                                     "PCKh vs latency", "front_latency", base, floor, floor_label),
             "pckh_vs_size": plot(frame.assign(mb=frame.bytes / 1e6), "mb", "artifact size on disk (MB, log)",
                                  "PCKh vs size", "front_size", base, floor, floor_label)}
    md, page = _texts(rep, frame, runs, max_drop, reference, {k: v[0] for k, v in plots.items()})
    try:
        os.makedirs(out, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise HGCError(f"-o {out}: not a directory (a file has that name, or a path on the way is a file)") from None
    outputs: dict[str, bytes] = {"results.csv": frame.to_csv(index=False).encode(), "report.md": md.encode(),
                                 "report.html": page.encode()}
    for name, (png, svg) in plots.items():
        outputs[f"{name}.png"], outputs[f"{name}.svg"] = png, svg
    for name, payload in outputs.items():
        with atomic_path(Path(out) / name) as tmp:
            tmp.write_bytes(payload)
        rep.files.append(str(Path(out) / name))
    return rep
