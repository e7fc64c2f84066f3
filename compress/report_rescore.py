"""Score again, on this machine, the report rows whose arithmetic differs from the machine that scored them.

The same int8 file scores differently on two x86 CPUs: with VNNI or AMX the products are summed exactly in
int32, on AVX2 without VNNI onnxruntime adds pairs of u8×s8 products in int16, which saturates (8-bit
weights lose ~1.6 PCKh@0.5 there on ``hg2-128-prune60-int8-qat.onnx``). OpenVINO runs fp32 as bf16 where the
CPU has bf16 math and as fp32 elsewhere. A report that gathers runs made on several machines and re-times
them here (``--side-by-side``) would otherwise draw its fronts from one machine's speed and another's
accuracy. ``rescore`` evaluates each such row's file as its runtime runs it here, with the run's own
evaluation settings, and keeps the scores in a cache beside the report (keyed by the file's hash, the
runtime, the settings and this machine's arithmetic), so making the report again repeats no evaluation.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from compress.errors import HGCError
from compress.evaluate import evaluate
from compress.io import sha256_file, write_text
from compress.measure.machine import BF16_MATH, INT8_DOT, versions
from compress.recipe import runtime_engine
from compress.report_timing import timed_file, timed_hint
from compress.runtime import describe_predictor, load_predictor

CACHE = "rescored.json"
JOINTS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")


def arithmetic(isa: str) -> dict[str, str] | None:
    """How an x86 CPU with these ISA flags sums int8 products and whether it has bf16 math: what decides
    scores. None for flags that name no AVX2-class x86 CPU (unknown, or another architecture)."""
    flags = set(isa.split())
    if not flags & {"avx2", *INT8_DOT}:
        return None
    return {"int8": "exact int32 (VNNI/AMX)" if any(f in flags for f in INT8_DOT) else "int16 pairs (no VNNI)",
            "bf16": "bf16" if any(f in flags for f in BF16_MATH) else "fp32"}


def rescore_reason(row: dict[str, Any], host_isa: str) -> str | None:
    """Why ``row``'s score may not hold on a CPU with ``host_isa``, or None when it holds (or either machine's
    arithmetic is unknown).

    int8 rows depend on the int8 summation; OpenVINO rows on bf16 math (it picks bf16 by itself); fp32 and
    fp16 in onnxruntime compute the same on any x86 CPU up to rounding.
    """
    isa = row.get("isa")
    if not isinstance(isa, str) or not isinstance(row.get("runtime"), str) or runtime_engine(row["runtime"]) == "torch":
        return None
    theirs, ours = arithmetic(isa), arithmetic(host_isa)
    if theirs is None or ours is None:
        return None
    executed = f"{row.get('precision') or ''} {row.get('artifact_precision') or ''}"
    if "int8" in executed and theirs["int8"] != ours["int8"]:
        return f"int8 summed as {theirs['int8']} there, {ours['int8']} here"
    if runtime_engine(row["runtime"]) == "openvino" and theirs["bf16"] != ours["bf16"]:
        return f"OpenVINO's float math {theirs['bf16']} there, {ours['bf16']} here"
    return None


def _settings(row: dict[str, Any]) -> dict[str, Any]:
    """The run's evaluation settings, as ``evaluate`` takes them."""
    return {"limit": _int(row.get("eval_limit")), "flip": row.get("eval_flip") is True,
            "batch_size": _int(row.get("eval_batch_size")) or 32}


def _key(row: dict[str, Any], host_isa: str) -> str:
    """Everything the score depends on: the row's artifact (an OpenVINO IR's weights too; a packed file, not
    its unpacking, which is redone each time), runtime and its version, precision hint, data, settings and
    this CPU's arithmetic."""
    path = str(row["artifact"])
    files = [path] + ([str(Path(path).with_suffix(".bin"))] if path.endswith(".xml") else [])
    settings = {"sha256": " ".join(sha256_file(f) for f in files if os.path.isfile(f)), "runtime": row["runtime"],
                "version": versions().get(runtime_engine(row["runtime"])), "hint": timed_hint(row),
                "data": row.get("eval_data"), **_settings(row), **(arithmetic(host_isa) or {})}
    return json.dumps(settings, sort_keys=True)


def _int(value: Any) -> int | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


def _load_cache(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text()).get("entries", {})
    except (ValueError, AttributeError, UnicodeDecodeError):
        entries = None
    if not isinstance(entries, dict) or not all(isinstance(e, dict) and "pckh" in e for e in entries.values()):
        raise HGCError(f"{path}: not a rescore cache (delete it to score again)")
    return entries


def _score(path: str, row: dict[str, Any], threads: int | None) -> dict[str, Any]:
    """PCKh of ``path`` as the row's runtime runs it here, with the run's evaluation settings."""
    if not isinstance(row.get("eval_data"), str):
        raise HGCError(f"--rescore: run {row['run']!r} records no evaluation data (results.json: evaluate.data)")
    started = time.perf_counter()
    try:
        predictor = load_predictor(path, runtime=runtime_engine(row["runtime"]), precision=timed_hint(row),
                                   threads=threads)
        report = evaluate(predictor, row["eval_data"], **_settings(row))
    except HGCError as exc:
        raise HGCError(f"--rescore: run {row['run']!r} [{row['runtime']}]: {exc}") from None
    scores = report.result.to_dict()
    ran = describe_predictor(predictor)
    return {"pckh": scores["Mean"], "pckh01": scores["Mean@0.1"], "auc": scores["AUC"],
            **{j: scores[j] for j in JOINTS}, "executed": ran.get("executed"), "samples": len(report.indices),
            "seconds": round(time.perf_counter() - started, 1)}


def rescore(rows: pd.DataFrame, host_isa: str, cache_dir: str, threads: int | None = None
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``rows`` (one per run and runtime) with every row ``rescore_reason`` names scored again here.

    The new scores replace ``pckh``, ``pckh01``, ``auc`` and the joints, the executed precision replaces
    ``precision`` where the runtime reports one, and ``rescored_from`` keeps the old PCKh (NaN elsewhere).
    Returns the frame and the rows named (run, runtime, PCKh there and here, why); a row whose file is gone
    keeps its score and is named with no score here. Scores are cached in ``cache_dir``/rescored.json,
    written after each evaluation.
    """
    cache_path = Path(cache_dir) / CACHE
    cache = _load_cache(cache_path)
    out = rows.copy()
    out["rescored_from"] = math.nan
    out["precision"] = out["precision"].astype(object) if "precision" in out.columns else None
    changed = []
    with tempfile.TemporaryDirectory(prefix="hgc-rescore-") as scratch:
        for i, row in enumerate(rows.to_dict("records")):
            reason = rescore_reason(row, host_isa)
            if reason is None:
                continue
            try:
                path = timed_file(row, scratch)
            except HGCError as exc:
                raise HGCError(str(exc).replace("--side-by-side:", "--rescore:", 1)) from None
            if path is None:  # said in the table, so a score from the other machine is not taken for this one's
                changed.append({"run": row["run"], "runtime": row["runtime"], "there": row.get("pckh"),
                                "here": math.nan, "reason": f"{reason}; not scored again: its file is gone"})
                continue
            key = _key(row, host_isa)
            if key not in cache:
                cache[key] = _score(path, row, threads)
                os.makedirs(cache_dir, exist_ok=True)
                write_text(cache_path, json.dumps({"format": 1, "entries": cache}, indent=1, sort_keys=True))
            got = cache[key]
            index = out.index[i]
            out.at[index, "rescored_from"] = row.get("pckh")
            for column in ("pckh", "pckh01", "auc", *JOINTS):
                if column in out.columns:
                    out.at[index, column] = got[column]
            if got.get("executed"):
                out.at[index, "precision"] = got["executed"]
            changed.append({"run": row["run"], "runtime": row["runtime"], "there": row.get("pckh"),
                            "here": got["pckh"], "reason": reason})
    return out, pd.DataFrame(changed, columns=["run", "runtime", "there", "here", "reason"])


def rescored_section(changed: pd.DataFrame, markdown: Callable[[pd.DataFrame], str]) -> list[str]:
    """Markdown lines: every re-scored row with its PCKh@0.5 as scored there and here (none: no lines)."""
    if changed.empty:
        return []
    return ["## Scored again on this machine (--rescore)", "",
            "Rows whose evaluating machine summed int8 or ran OpenVINO's float math differently from this one, "
            "scored here with the run's own evaluation settings; the table, fronts and picks use these scores.",
            "", markdown(_display(changed)), ""]


def rescored_html(changed: pd.DataFrame) -> str:
    if changed.empty:
        return ""
    return "<h2>Scored again on this machine (--rescore)</h2>" + _display(changed).to_html(index=False, border=0)


def _display(changed: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"run": changed.run, "runtime": changed.runtime,
                         "PCKh@0.5 there": changed.there.map("{:.2f}".format),
                         "PCKh@0.5 here": changed.here.map(lambda v: "—" if math.isnan(v) else f"{v:.2f}"),
                         "Δ": (changed.here - changed.there).map(lambda v: "" if math.isnan(v) else f"{v:+.2f}"),
                         "why": changed.reason})
