"""Reports: many runs' ``results.json`` → one table with ratios vs the baseline, pareto fronts and plots.

``build_report`` reads every row first (a missing or corrupt file is one ``HGCError`` and nothing is
written), then writes ``results.csv``, ``report.md``, a self-contained ``report.html`` and the plots
``pckh_vs_latency``/``pckh_vs_size`` (PNG and SVG, log x, front drawn, baseline starred).
"""
from __future__ import annotations

import base64
import html
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from compress.errors import HGCError
from compress.io import atomic_path
from compress.measure.machine import deciding_features, machine_info
from compress.pareto import pareto_front
from compress.report_curves import curve_pairs, curves_frame, curves_html, curves_section
from compress.report_plots import plot, plot_curves, plot_macs, short_label
from compress.report_rescore import rescore as rescore_rows
from compress.report_rescore import rescored_html, rescored_section
from compress.report_size import coder_rows, size_html, size_section, size_table
from compress.report_timing import side_by_side
from compress.report_versus import prune_vs_swap, versus_html, versus_section
from compress.results import latency_column, results_table, runtime_rows, runtimes_timed


@dataclass
class Report:
    """What ``build_report`` chose and wrote."""

    out: str
    table: pd.DataFrame  # one row per (run, runtime)
    baseline: str | None
    latency: str  # ``p50_ms:<runtime>:b<batch>``, ``*`` for every runtime
    smallest: str | None = None
    fastest: str | None = None
    smallest_runtime: str | None = None
    fastest_runtime: str | None = None
    runtimes: list[str] = field(default_factory=list)
    machine: str = ""
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sizes: pd.DataFrame = field(default_factory=pd.DataFrame)  # packed runs (``report_size.size_table``)
    coders: pd.DataFrame = field(default_factory=pd.DataFrame)  # coders compared at pack time
    timing: str = ""  # how the latencies were measured when the report re-timed them side by side
    curve_pairs: pd.DataFrame = field(default_factory=pd.DataFrame)  # ``report_curves.curve_pairs``
    versus: pd.DataFrame = field(default_factory=pd.DataFrame)  # ``report_versus.prune_vs_swap``
    versus_runtime: str | None = None
    rescored: pd.DataFrame = field(default_factory=pd.DataFrame)  # ``report_rescore.rescore``'s re-scored rows


def _pick_latency(frame: pd.DataFrame, runtime: str | None, batch: int | None) -> tuple[list[str], int]:
    """(runtimes, batch) of the report: ``runtime`` alone, or every runtime timed at ``batch`` (default 1)."""
    timed = runtimes_timed(frame)
    if runtime is not None and runtime not in timed:
        raise HGCError(f"--runtime {runtime}: no run was timed with it (timed: {', '.join(timed) or 'none'})")
    if not timed:
        return [], batch or 1
    chosen = [runtime] if runtime else list(timed)
    batches = sorted({b for rt in chosen for b in timed[rt]})
    if batch is None:
        batch = 1 if 1 in batches else batches[0]
    if batch not in batches:
        raise HGCError(f"--batch {batch}: {' and '.join(chosen)} {'was' if len(chosen) == 1 else 'were'} timed at "
                       f"batch {', '.join(map(str, batches))}")
    return [rt for rt in chosen if batch in timed[rt]], batch


def _pick_baseline(frame: pd.DataFrame, baseline: str | None) -> str | None:
    if baseline is not None:
        if baseline not in set(frame.run):
            raise HGCError(f"--baseline {baseline}: no such run (runs: {', '.join(frame.run)})")
        return baseline
    named = frame[frame.run == "baseline"]
    plain = frame[frame.n_steps == 0]
    chosen = named if len(named) else plain
    return str(chosen.run.iloc[0]) if len(chosen) else None


def analyse(frame: pd.DataFrame, baseline: str | None, max_drop: float
            ) -> tuple[pd.DataFrame, dict[str, int | None], str]:
    """Add ratio, Δ and front columns to the (run, runtime) rows; return (table, picks, reference).

    ``picks`` holds row positions within ``max_drop`` of the reference (the baseline's best PCKh over its
    runtimes, or the most accurate row when there is no baseline): ``smallest``, ``fastest`` and, for each
    other runtime, ``fastest on RUNTIME``, so a target set in one runtime (onnxruntime, say) is read off its
    own line when another runtime holds the overall pick. ×faster compares with the baseline on the same
    runtime, ×vs best base with the baseline on its fastest runtime.
    """
    frame = frame.copy()
    frame["front_latency"] = pareto_front(frame, maximize="pckh", minimize="latency_ms")
    frame["front_size"] = pareto_front(frame, maximize="pckh", minimize="bytes")
    frame["front"] = [", ".join(n for n, on in (("latency", a), ("size", b)) if on)
                      for a, b in zip(frame.front_latency, frame.front_size)]
    if baseline is not None:
        base = frame[frame.run == baseline]
        same = frame.runtime.map(dict(zip(base.runtime, base.latency_ms)))
        base_pckh = frame.runtime.map(dict(zip(base.runtime, base.pckh))).fillna(base.pckh.iloc[0])
        frame["x_smaller"] = base.bytes.iloc[0] / frame.bytes
        frame["x_faster"] = same / frame.latency_ms
        frame["x_vs_best_base"] = base.latency_ms.min() / frame.latency_ms
        frame["d_pckh"] = frame.pckh - base_pckh
        ref_name, ref = baseline, base.pckh.max()
    else:
        frame["x_smaller"] = frame["x_faster"] = frame["x_vs_best_base"] = frame["d_pckh"] = math.nan
        best = frame.loc[frame.pckh.idxmax()] if frame.pckh.notna().any() else None
        ref_name, ref = (str(best.run), best.pckh) if best is not None else ("", math.nan)
    order = frame.run.map(lambda r: 0 if r == baseline else 1)
    frame = frame.assign(_o=order).sort_values(["_o", "pckh"], ascending=[True, False]).drop(columns="_o")
    frame = frame.reset_index(drop=True)
    eligible = frame[frame.pckh >= ref - max_drop]
    smallest = int(eligible.bytes.idxmin()) if len(eligible) else None
    timed = eligible[eligible.latency_ms.notna()]
    fastest = int(timed.latency_ms.idxmin()) if len(timed) else None
    picks: dict[str, int | None] = {"smallest": smallest, "fastest": fastest}
    picks.update({f"fastest on {rt}": int(rows.latency_ms.idxmin()) for rt, rows in sorted(timed.groupby("runtime"))
                  if rt != frame.runtime[fastest]})  # timed has rows, so fastest is one of them
    return frame, picks, ref_name


DISPLAY = {"run": "run", "runtime": "runtime", "steps": "steps", "steps_min": "steps min",
           "precision": "precision (executed)",
           "pckh": "PCKh@0.5", "d_pckh": "ΔPCKh", "pckh01": "PCKh@0.1", "auc": "AUC", "params": "params",
           "macs": "MMACs", "bytes": "MB", "gzip_bytes": "gzip MB", "x_smaller": "×smaller", "latency_ms": "p50 ms",
           "x_faster": "×faster", "x_vs_best_base": "×vs best base", "front": "front"}


PLOT_TITLES = {"pckh_vs_latency": "PCKh vs latency", "pckh_vs_size": "PCKh vs size",
               "pckh_latency_vs_macs": "PCKh and latency vs MACs", "pckh_vs_steps": "PCKh vs training steps"}
SIDE_BY_SIDE = {"x_faster_sbs": "×faster paired", "x_faster_vs_openvino": "×vs OpenVINO fp32"}


def display_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The human table: rounded numbers, sizes in MB, MACs in millions, blank for missing values.

    ``results.csv`` keeps the raw numbers; this is what markdown and HTML show. With side-by-side timing
    (``report_timing``) the paired ratios come after ×faster.
    """
    columns = {**DISPLAY}
    paired = {k: v for k, v in SIDE_BY_SIDE.items() if k in frame}
    if paired:
        keys = list(columns)
        at = keys.index("x_vs_best_base") + 1
        columns = {k: columns.get(k) or paired[k] for k in [*keys[:at], *paired, *keys[at:]]}
    shown = frame[list(columns)].copy()
    shown["macs"] = shown.macs / 1e6
    shown["bytes"] = shown.bytes / 1e6
    shown["gzip_bytes"] = shown.gzip_bytes / 1e6
    fmt = {"pckh": "{:.2f}", "d_pckh": "{:+.2f}", "pckh01": "{:.2f}", "auc": "{:.2f}", "params": "{:,.0f}",
           "macs": "{:.1f}", "bytes": "{:.3f}", "gzip_bytes": "{:.3f}", "x_smaller": "{:.2f}×",
           "latency_ms": "{:.3g}", "steps_min": "{:.0f}", "x_faster": "{:.2f}×", "x_vs_best_base": "{:.2f}×",
           **{k: "{:.2f}×" for k in paired}}
    for col, spec in fmt.items():
        shown[col] = [spec.format(v) if isinstance(v, (int, float)) and math.isfinite(v) else "" for v in shown[col]]
    shown["runtime"] = shown.runtime.fillna("")
    return shown.rename(columns=columns)


def _markdown_table(frame: pd.DataFrame) -> str:
    cells = [[str(c) for c in frame.columns]] + [[str(v).replace("|", "\\|") for v in row] for row in frame.values]
    lines = ["| " + " | ".join(r) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("---" for _ in frame.columns) + "|")
    return "\n".join(lines)


def _summary(rep: Report, frame: pd.DataFrame, picks: dict[str, int | None], max_drop: float,
             reference: str) -> list[str]:
    lines = []
    for label, index in picks.items():
        if index is None:
            lines.append(f"- {label}: no run within {max_drop:g} PCKh of {reference or 'the best run'}")
            continue
        r = frame.loc[index]
        ratio = r.x_smaller if label == "smallest" else r.x_faster
        extra = f", {ratio:.2f}× {'smaller' if label == 'smallest' else 'faster'}" if math.isfinite(ratio) else ""
        if label == "fastest" and math.isfinite(r.x_vs_best_base):
            extra += f" ({r.x_vs_best_base:.2f}× vs the baseline on its fastest runtime)"
        delta = f" ({r.d_pckh:+.2f})" if math.isfinite(r.d_pckh) else ""
        where = f" on {r.runtime}" if isinstance(r.runtime, str) else ""
        base_of = dict(zip(frame.run, frame.base))
        own_base = isinstance(r.base, str) and r.base != base_of.get(rep.baseline, r.base)
        made = (f"; made by {r.steps}" if r.n_steps else "") + (f" from `{r.base}`" if own_base else "")
        lines.append(f"- **{label}**: `{r.run}`{where} ({r.precision}) — {r.bytes / 1e6:.3f} MB, "
                     f"{r.latency_ms:.3g} ms, PCKh@0.5 {r.pckh:.2f}{delta}{extra}{made}")
    return lines


def _texts(rep: Report, frame: pd.DataFrame, runs: Sequence[str], picks: dict[str, int | None], max_drop: float,
           reference: str, images: dict[str, bytes]) -> tuple[str, str]:
    """(report.md, report.html) from the analysed table; the HTML embeds the PNGs as base64."""
    table = display_table(frame)
    head = [f"{frame.run.nunique()} runs on {len(rep.runtimes) or 'no'} runtimes: {len(frame)} (run, runtime) rows "
            f"from {', '.join(map(str, runs))}; the pareto fronts are drawn over all of them.",
            f"Baseline: `{rep.baseline}`." if rep.baseline else "No baseline run (ratios are blank; "
            "name one with --baseline or include a run without steps).",
            f"Latency: p50 of {', '.join(f'`{r}`' for r in rep.runtimes) or 'no runtime'} at batch "
            f"{rep.latency.rsplit(':b', 1)[1]}.",
            *([f"Machine: {rep.machine}."] if rep.machine else []),
            *([f"Timing: {rep.timing}."] if rep.timing else [])]
    summary = _summary(rep, frame, picks, max_drop, reference)
    notes = [f"- ⚠ {n}" for n in rep.notes]
    legend = ("`front`: on the PCKh-vs-latency and/or PCKh-vs-size pareto front (no other (run, runtime) row is "
              "at least as accurate and at least as small/fast, and strictly better in one). steps = the ops "
              "that made the row, first those its base already had when it continues an earlier run's "
              "checkpoint (from the lineage). steps min = wall "
              "minutes of the run's recipe steps as recorded (a resumed step: its last sitting; a step reused "
              "from a sibling run: that run's time). ×smaller = baseline "
              "bytes / bytes; ×faster = baseline p50 on the same runtime / p50; ×vs best base = baseline p50 on "
              "its fastest runtime / p50; ΔPCKh = PCKh − baseline PCKh on the same runtime. PCKh is scored as "
              "each runtime runs the artifact where that differs (OpenVINO: its precision hint); precision "
              "says what executed, e.g. `fp32 (run as bf16)`.")
    md = "\n".join(["# Compression report", "", *head, "", *([*notes, ""] if notes else []),
                    f"## Within {max_drop:g} PCKh of `{reference}`", "", *summary, "", "## Runs", "",
                    _markdown_table(table), "", legend, "", *_quant_section(frame),
                    *size_section(rep.sizes, rep.coders, _markdown_table),
                    *curves_section(rep.curve_pairs, _markdown_table),
                    *versus_section(rep.versus, rep.versus_runtime, _markdown_table),
                    *rescored_section(rep.rescored, _markdown_table), "## Plots", "",
                    *[line for name in images for line in (f"![{PLOT_TITLES.get(name, name)}]({name}.png)", "")]])
    imgs = "".join(f'<figure><img alt="{html.escape(PLOT_TITLES.get(n, n))}" src="data:image/png;base64,'
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
            + f"<p>{html.escape(legend).replace('`', '')}</p>{size_html(rep.sizes, rep.coders)}"
            + curves_html(rep.curve_pairs) + versus_html(rep.versus, rep.versus_runtime) + rescored_html(rep.rescored)
            + f"<h2>Plots</h2>{imgs}</body></html>\n")
    return md, page


def _quant_section(frame: pd.DataFrame) -> list[str]:
    """Markdown lines: per int8 run, the convs that run as int8 kernels and the ops left in float."""
    rows = frame[frame.int8_convs.notna() & (frame.artifact_precision == "int8")].drop_duplicates("run")
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


def _machine_line(raw: pd.DataFrame, host: dict[str, Any] | None = None) -> str:
    """CPU, ISA flags and the features that decided int8/bf16 speed (and OpenVINO's capabilities): of ``host``
    (the machine that re-timed every row, ``--side-by-side``) when given, else of the first run's."""
    if host is not None:
        cpu, isa, caps = host.get("cpu"), host.get("isa") or "", host.get("openvino_capabilities") or ""
    else:
        known = raw[raw.cpu.notna()]
        if known.empty:
            return ""
        first = known.iloc[0]
        cpu, isa = first.cpu, first.isa if isinstance(first.isa, str) else ""
        caps = next((c for c in known[known.cpu == first.cpu].openvino_capabilities if isinstance(c, str) and c), "")
    ov = f"; OpenVINO CPU capabilities {caps}" if caps else ""
    return f"{cpu} ({isa or 'no listed ISA flags'}): {deciding_features(isa)}{ov}"


def _notes(frame: pd.DataFrame, host: dict[str, Any] | None = None, rescored: int | None = None) -> list[str]:
    """Warnings above the table; ``rescored``: how many rows --rescore scored again here (None: not asked)."""
    notes = []
    if frame.quick.any():
        quick = int(frame.drop_duplicates("run").quick.sum())
        notes.append(f"{quick} run(s) used --quick (training cut to 1 %, few samples, few "
                     "timed runs): smoke-test numbers, not results")
    cpus = sorted({str(c) for c in frame.cpu.dropna()})
    if host is not None:  # every re-timed row was timed here; what the runs' own machines decided stays theirs
        other = sorted(set(cpus) - {str(host.get("cpu"))})
        if other:
            notes.append(f"some runs were made on another machine ({'; '.join(other)}): latencies are this report's "
                         f"({host.get('cpu')}), but each row's PCKh and executed precision are the evaluating "
                         "machine's (OpenVINO picks bf16 where the CPU has it)"
                         + (f" except the {rescored} row(s) scored again here (--rescore, table below)"
                            if rescored else " (--rescore: none differs here in int8 or bf16 arithmetic)"
                            if rescored == 0 else
                            " (--rescore scores here the rows whose int8 or bf16 arithmetic differs)")
                         + ", and a row it did not re-time keeps its run's latency")
    elif len(cpus) > 1:
        notes.append(f"latencies come from different machines ({'; '.join(cpus)}): ratios are not comparable")
    if rescored and host is None:
        notes.append(f"{rescored} row(s) scored again on this machine (--rescore, table below)")
    return notes


def _make_out(out: str) -> None:
    try:
        os.makedirs(out, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise HGCError(f"-o {out}: not a directory (a file has that name, or a path on the way is a file)") from None


def build_report(runs: Sequence[str], out: str, max_drop: float = 1.0, runtime: str | None = None,
                 batch: int | None = None, baseline: str | None = None, side_by_side_rounds: int = 0,
                 threads: int = 1, rescore: bool = False) -> Report:
    """Collect every results.json under ``runs`` and write the report files into ``out``.

    The table has one row per (run, runtime) timed at ``batch`` (default 1): ``runtime`` keeps one runtime
    (default: all of them), and the fronts are drawn over every row; ``max_drop`` names the smallest and the
    fastest (run, runtime) within that PCKh drop of the baseline. ``side_by_side_rounds`` > 0 re-times every
    row's file in this process, round-robin for that many rounds on ``threads`` threads
    (``report_timing.side_by_side``), and the latencies, ratios and fronts use those times. ``rescore`` scores
    here again the rows whose int8 or bf16 arithmetic differs on this CPU from the machine that scored them
    (``report_rescore.rescore``; cached in ``out``), so accuracy and speed come from one machine.
    """
    if not max_drop >= 0:
        raise HGCError(f"--max-drop {max_drop}: must be ≥ 0")
    if side_by_side_rounds < 0 or threads < 1:
        raise HGCError(f"--side-by-side {side_by_side_rounds} / --threads {threads}: rounds must be ≥ 0, threads ≥ 1")
    raw = results_table(runs)
    runtimes, batch = _pick_latency(raw, runtime, batch)
    base = _pick_baseline(raw, baseline)
    rows = runtime_rows(raw, runtimes, batch)
    rows["label"] = [short_label(r) + (f" [{rt}]" if len(runtimes) > 1 and isinstance(rt, str) else "")
                     for r, rt in zip(rows.run, rows.runtime)]
    timing, host, rescored = "", None, pd.DataFrame()
    if side_by_side_rounds and base is None:  # before any re-scoring: that can take minutes
        raise HGCError("--side-by-side needs a baseline run to compare against (name one with --baseline)")
    if rescore:
        _make_out(out)  # the scores are cached there as they come
        rows, rescored = rescore_rows(rows, machine_info().get("isa") or "", out, threads=threads)
    if side_by_side_rounds:
        rows, sbs = side_by_side(rows, base, batch=batch, runs=side_by_side_rounds, threads=threads)
        host = sbs["machine"]
        timing = (
            f"latencies measured side by side by this report: {sbs['files']} files loaded in one process and run "
            f"round-robin for {sbs['rounds']} rounds, each timed call right after {sbs['settle']} untimed ones of "
            f"the same file (timed warm) ({sbs['threads']} thread(s), batch {sbs['batch']}); ×faster "
            f"paired = median over rounds of {sbs['reference']}'s time / the row's time; p50 ms = "
            f"{sbs['reference']}'s p50 / ×faster paired, so the fronts follow the paired ratios"
            + (f"; ×vs OpenVINO fp32 the same against {sbs['openvino_reference']}" if sbs["openvino_reference"] else "")
            + (f"; kept the run's own timing: {', '.join(sbs['not_retimed'])}" if sbs["not_retimed"] else ""))
    frame, picks, reference = analyse(rows, base, max_drop)
    scored_here = int(rescored.here.notna().sum()) if rescore else None
    pick = {k: (None, None) if i is None else (str(frame.run[i]), frame.runtime[i]) for k, i in picks.items()}
    latency = latency_column(runtimes[0] if len(runtimes) == 1 else "*", batch)
    rep = Report(out=str(out), table=frame, baseline=base, latency=latency, smallest=pick["smallest"][0],
                 fastest=pick["fastest"][0], smallest_runtime=pick["smallest"][1], fastest_runtime=pick["fastest"][1],
                 runtimes=runtimes, machine=_machine_line(raw, host), notes=_notes(frame, host, scored_here),
                 timing=timing, rescored=rescored,
                 sizes=size_table(raw, base), coders=coder_rows(raw), curve_pairs=curve_pairs(raw))
    rep.versus_runtime = "onnxruntime-cpu" if "onnxruntime-cpu" in runtimes else (runtimes[0] if runtimes else None)
    rep.versus = prune_vs_swap(frame, rep.versus_runtime, base)
    ref = frame[frame.run == reference].pckh
    floor = float(ref.max()) - max_drop if len(ref) else None
    floor_label = f"{reference} − {max_drop:g} PCKh (--max-drop)"
    where = runtimes[0] if len(runtimes) == 1 else "each row's runtime"
    plots = {"pckh_vs_latency": plot(frame, "latency_ms", f"p50 latency, {where}, batch {batch} (ms, log)",
                                     "PCKh vs latency", "front_latency", base, floor, floor_label),
             "pckh_vs_size": plot(frame.assign(mb=frame.bytes / 1e6), "mb", "artifact size on disk (MB, log)",
                                  "PCKh vs size", "front_size", base, floor, floor_label)}
    first = runtimes[0] if runtimes else None
    macs = plot_macs(frame, base, f"p50 latency, {first or 'not timed'}, batch {batch} (ms, log)", runtime=first)
    if macs is not None:
        plots["pckh_latency_vs_macs"] = macs
    curves = plot_curves(curves_frame(raw))
    if curves is not None:
        plots["pckh_vs_steps"] = curves
    md, page = _texts(rep, frame, runs, picks, max_drop, reference, {k: v[0] for k, v in plots.items()})
    _make_out(out)
    outputs: dict[str, bytes] = {"results.csv": frame.to_csv(index=False).encode(), "report.md": md.encode(),
                                 "report.html": page.encode()}
    if not rep.sizes.empty:
        outputs["sizes.csv"] = rep.sizes.to_csv(index=False).encode()
    for name, (png, svg) in plots.items():
        outputs[f"{name}.png"], outputs[f"{name}.svg"] = png, svg
    for name, payload in outputs.items():
        with atomic_path(Path(out) / name) as tmp:
            tmp.write_bytes(payload)
        rep.files.append(str(Path(out) / name))
    return rep
