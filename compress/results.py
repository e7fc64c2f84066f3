"""Run results: every ``results.json`` under some paths → one checked table row per run.

The reading half of ``compress.report``: a missing, corrupt or foreign file is one ``HGCError`` naming
it, never a silently missing row, and only latencies that timed the row's own artifact are kept.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from compress.errors import HGCError, first_line
from compress.report_curves import curve_column, inherited, lineage_steps, trained_steps
from compress.rundir import read_json
from compress.runner import RESULTS_FORMAT

REQUIRED = {"name": str, "pckh_mean": (int, float, type(None)), "bytes": int, "params": (int, float),
            "latency": list, "steps": list}


def find_results(paths: Sequence[str]) -> list[Path]:
    """Every ``results.json`` under ``paths`` (files or directories), each once, in a stable order.

    Finding none is an error: an empty report would hide a wrong path.
    """
    found: dict[Path, None] = {}
    for path in paths:
        p = Path(path)
        if p.is_file():
            found[p.resolve()] = None
        elif p.is_dir():
            for item in sorted(p.rglob("results.json")):
                if not any(part.startswith(".") for part in item.relative_to(p).parts):  # an unfinished archive
                    found[item.resolve()] = None
        else:
            raise HGCError(f"{path}: no such file or directory")
    if not found:
        raise HGCError(f"no results.json found under {', '.join(map(str, paths))} (run `hgc run RECIPE` first)")
    return list(found)


def read_results(path: Path) -> dict[str, Any]:
    """One results row, checked for the fields a report needs.

    A corrupt or foreign file is an error naming it, never a silently missing row.
    """
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise HGCError(f"{path}: corrupt results file ({first_line(exc)})") from None
    if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT:
        raise HGCError(f"{path}: not an hgc results file (expected format {RESULTS_FORMAT!r})")
    for key, kind in REQUIRED.items():
        if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
            raise HGCError(f"{path}: corrupt results file: {key!r} is missing or has the wrong type")
    return data


def finished_results(run: Path, verb: str) -> dict[str, Any]:
    """The ``results.json`` of a finished, full-budget run directory; ``verb`` (``ship``, ``archive``) prefixes errors.

    A missing or foreign file, or a ``--quick`` smoke run, is an error: only a run finished at its recipe's
    budget is worth shipping or keeping.
    """
    path = run / "results.json"
    if not run.is_dir():
        raise HGCError(f"{verb}: {run}: no such run directory")
    results = read_json(path)
    if results is None:
        raise HGCError(f"{verb}: {path}: missing or unreadable: not a finished hgc run (run it to the end first)")
    if results.get("format") != RESULTS_FORMAT:
        raise HGCError(f"{verb}: {path}: format {results.get('format')!r}, expected {RESULTS_FORMAT!r}")
    if results.get("quick"):
        raise HGCError(f"{verb}: {path}: a --quick run (smoke-test budget): use a full run")
    return results


def latency_column(runtime: str, batch: int, stat: str = "p50") -> str:
    """Name of the table column holding a runtime's latency at one batch size (``p50_ms:torch-cpu:b1``).

    One column per runtime and batch keeps every measured number in ``results.csv``.
    """
    return f"{stat}_ms:{runtime}:b{batch}"


def _row(data: dict[str, Any], path: Path) -> dict[str, Any]:
    pckh = data.get("pckh") or {}
    earlier = inherited(data)  # the ops its base already had, when it continues an earlier run
    ops = [str(e.get("op")) for e in earlier] + [str(s.get("op")) for s in data["steps"]]
    row = {"run": data["name"], "steps": " → ".join(ops) or "(none)", "inherited_steps": len(earlier),
           "n_steps": len(data["steps"]), "steps_min": _minutes(data["steps"]), "precision": data.get("precision"),
           "pckh": _float(data["pckh_mean"]),
           "pckh01": _float(data.get("pckh01_mean")), "auc": _float(data.get("auc")),
           **{col: _float(pckh.get(col)) for col in ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")},
           "params": data["params"], "macs": data.get("macs"), "bytes": data["bytes"],
           "gzip_bytes": data.get("gzip_bytes"), "lzma_bytes": data.get("lzma_bytes"),
           "quick": bool(data.get("quick")), "samples": (data.get("evaluate") or {}).get("samples"),
           **{f"eval_{k}": (data.get("evaluate") or {}).get(k) for k in ("data", "limit", "flip", "batch_size")},
           "cpu": (data.get("machine") or {}).get("cpu"), "isa": (data.get("machine") or {}).get("isa"),
           "openvino_capabilities": (data.get("machine") or {}).get("openvino_capabilities"), "threads": None,
           "artifact": str(path.parent / (data.get("artifact") or {}).get("path", "")), "results": str(path),
           "float_values": data.get("float_values"), "base": data.get("base"), "base_sha256": data.get("base_sha256"),
           "recipe_file": data.get("recipe_file"),
           "overrides": json.dumps(data["overrides"]) if data.get("overrides") else "",
           "val_curve": curve_column(data["steps"]),
           "train_steps": sum(trained_steps(s.get("metrics") or {}) for s in data["steps"])
           + sum(lineage_steps(e) for e in earlier)}
    row.update(_quant_columns(data["steps"]))
    row.update(_pack_columns(data))
    for lat in data["latency"]:
        if not _times_the_artifact(lat, data):
            continue
        for stat in ("p50", "p90"):
            row[latency_column(lat["runtime"], lat["batch"], stat)] = _float(lat.get(f"{stat}_ms"))
        row["threads"] = lat.get("threads")
        if lat.get("executed"):
            row[f"executed:{lat['runtime']}"] = lat["executed"]
    for runtime, acc in (data.get("accuracy_by_runtime") or {}).items():  # scored as that runtime runs it
        row.update({f"pckh:{runtime}": _float(acc.get("pckh_mean")),
                    f"pckh01:{runtime}": _float(acc.get("pckh01_mean")), f"auc:{runtime}": _float(acc.get("auc"))})
        if acc.get("executed"):
            row[f"executed:{runtime}"] = acc["executed"]
    return row


def runtimes_timed(frame: pd.DataFrame) -> dict[str, list[int]]:
    """Runtime → the batch sizes it timed, over every row of ``results_table``."""
    found: dict[str, set[int]] = {}
    for column in frame.columns:
        if column.startswith("p50_ms:") and frame[column].notna().any():
            _, runtime, batch = column.split(":")
            found.setdefault(runtime, set()).add(int(batch[1:]))
    return {k: sorted(v) for k, v in sorted(found.items())}


def runtime_rows(frame: pd.DataFrame, runtimes: Sequence[str], batch: int) -> pd.DataFrame:
    """One row per (run, runtime) timed at ``batch``: the report's runtime dimension.

    ``latency_ms`` is that runtime's p50; ``pckh``/``pckh01``/``auc`` are its own scores where it was evaluated
    as it runs (OpenVINO), else the run's; ``precision`` says what executed (``fp32 (run as bf16)``) and
    ``artifact_precision`` what the file is. A run no runtime timed keeps one row with a blank runtime.
    """
    rows = []
    for record in frame.to_dict("records"):
        timed = [rt for rt in runtimes if _present(record.get(latency_column(rt, batch)))]
        for runtime in timed or [None]:
            row = {**record, "runtime": runtime, "artifact_precision": record.get("precision"),
                   "latency_ms": record.get(latency_column(runtime, batch)) if runtime else math.nan}
            if runtime and _present(record.get(f"pckh:{runtime}")):
                row.update(pckh=record[f"pckh:{runtime}"], pckh01=record.get(f"pckh01:{runtime}"),
                           auc=record.get(f"auc:{runtime}"))
            executed = record.get(f"executed:{runtime}") if runtime else None
            if isinstance(executed, str):
                row["precision"] = executed
            rows.append(row)
    return pd.DataFrame(rows).reset_index(drop=True)


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _quant_columns(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """What the last ``quantize`` step measured in onnxruntime's optimized graph (blank without one)."""
    m = next((s.get("metrics") or {} for s in reversed(steps) if s.get("op") == "quantize"), {})
    float_ops = m.get("float_ops") or {}
    return {"int8_convs": m.get("int8_convs"), "conv_layers": m.get("conv_layers"),
            "int8_norm_convs": m.get("int8_norm_convs"), "fp32_layers": m.get("fp32_nodes"),
            "float_ops": ", ".join(f"{op} {n}" for op, n in float_ops.items()) if float_ops else None}


def _pack_columns(data: dict[str, Any]) -> dict[str, Any]:
    """What the ``pack`` step recorded (``pack_*``: bits per weight, coder, the size counts of
    ``compress.packed.stages``, ``pack_coders`` as JSON when it compared coders) and the raw/gzip/lzma bytes
    of the unpacked fp32 ONNX (``unpacked_*``); blank for a run without a pack step."""
    m = next((s.get("metrics") or {} for s in reversed(data["steps"]) if s.get("op") == "pack"), None)
    if m is None:
        return {}
    unpacked = data.get("unpacked_onnx") or {}
    return {"pack_bits_per_weight": m.get("bits_per_weight"), "pack_coder": m.get("coder"),
            **{f"pack_{k}": v for k, v in (m.get("sizes") or {}).items()},
            "pack_coders": json.dumps(m["coders"]) if m.get("coders") else None,
            **{f"unpacked_{k}": unpacked.get(k) for k in ("bytes", "gzip_bytes", "lzma_bytes")}}


def _times_the_artifact(lat: dict[str, Any], data: dict[str, Any]) -> bool:
    """False for a latency row that timed something other than the artifact the row's PCKh and size describe.

    A runtime listed in ``skipped_runtimes`` never counts; neither does an older results file's torch row that
    timed the fp32 checkpoint (``timed: model.pt``) while the artifact is int8 or fp16.
    """
    if lat.get("runtime") in (data.get("skipped_runtimes") or {}):
        return False
    return not (str(lat.get("timed", "")).endswith(".pt") and data.get("precision") not in (None, "fp32"))


def _minutes(steps: list[dict[str, Any]]) -> float:
    """Wall minutes of a run's steps as it recorded them (a resumed step counts its last sitting), NaN if none."""
    seconds = [s["seconds"] for s in steps if isinstance(s.get("seconds"), (int, float))]
    return sum(seconds) / 60 if seconds else math.nan


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def results_table(paths: Sequence[str]) -> pd.DataFrame:
    """One row per run found under ``paths`` (see ``_row`` for the columns).

    Duplicate run names are an error, since a run collected twice would distort the front.
    """
    files = find_results(paths)
    rows = [_row(read_results(f), f) for f in files]
    names = Counter(r["run"] for r in rows)
    twice = [n for n, c in names.items() if c > 1]
    if twice:
        where = [r["results"] for r in rows if r["run"] == twice[0]]
        raise HGCError(f"run {twice[0]!r} appears twice ({', '.join(where)}); report one copy of each run")
    return pd.DataFrame(rows)
