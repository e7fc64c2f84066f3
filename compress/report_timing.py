"""Side-by-side latency for a report: every row's file re-timed round-robin in one process.

Each run times its artifact when it finishes, alone, on whatever else the machine was doing then; two runs
a day apart, or two runs sharing the cores, give latencies that cannot be divided by each other. With
``hgc report --side-by-side`` the report re-times every (artifact, runtime) row in one process, all files
loaded at once and run one after the other in every round (``bench_side_by_side``), and its latency
columns and fronts use those numbers: ``×faster`` is the median over rounds of the baseline's time over
the row's time in the same round. The reference is the baseline's fp32 ONNX in onnxruntime; where the
baseline was also timed in OpenVINO, ``×faster vs OpenVINO fp32`` compares against the untouched model in
that runtime, the bar a compressed model must clear to beat a mere runtime switch.

Rows the side-by-side timing cannot repeat keep their recorded latency and say so: torch runtimes (they
time the checkpoint, not an exported file) and files that are no longer on disk. A packed ``.hgz`` is timed
as the fp32 ONNX of its unpacked network, as the runner timed it: the run's ``final/model.unpacked.onnx``
where it is still there, else unpacked from the ``.hgz`` into a temporary directory (``hgc archive`` keeps
only the ``.hgz``, a tenth of the bytes).
"""
from __future__ import annotations

import math
import os
import tempfile
from typing import Any

import pandas as pd

from compress.errors import HGCError
from compress.io import sha256_file
from compress.measure.bench import bench_side_by_side, paired_ratio
from compress.measure.latency import SETTLE_CALLS
from compress.measure.machine import machine_info
from compress.packed.files import unpack_file
from compress.packed.format import SUFFIX as PACKED_SUFFIX
from compress.recipe import runtime_engine
from compress.runner import UNPACKED_ONNX
from compress.runtime_openvino import cpu_capabilities

REFERENCE_RUNTIME = "onnxruntime-cpu"
OPENVINO_RUNTIME = "openvino-cpu"


def timed_file(row: dict[str, Any], scratch: str | None = None) -> str | None:
    """The file a (run, runtime) row's latency is of, or None when side-by-side timing cannot repeat it.

    For a packed artifact that is the run's unpacked fp32 ONNX; when the run no longer holds it (an archived
    run) and ``scratch`` is a directory, the ``.hgz`` is unpacked there (once per file: named by its sha256).
    """
    runtime, artifact = row.get("runtime"), str(row.get("artifact") or "")
    if not isinstance(runtime, str) or runtime_engine(runtime) == "torch" or not artifact:
        return None
    if artifact.endswith(PACKED_SUFFIX):
        results = str(row.get("results") or "")
        kept = os.path.join(os.path.dirname(results), "final", UNPACKED_ONNX) if results else ""
        if kept and os.path.isfile(kept):
            return kept
        if scratch is None or not os.path.isfile(artifact):
            return None
        onnx = os.path.join(scratch, sha256_file(artifact)[:16] + ".onnx")  # two runtimes' rows: one unpacking
        if not os.path.isfile(onnx):
            try:
                unpack_file(artifact, onnx)
            except HGCError as exc:
                raise HGCError(f"--side-by-side: run {row.get('run')!r}: cannot unpack {artifact} to time it "
                               f"({exc})") from None
        return onnx
    return artifact if os.path.isfile(artifact) else None


def timed_hint(row: dict[str, Any]) -> str | None:
    """OpenVINO's precision hint as the run timed it: bf16 artifacts run bf16, everything else by its file."""
    return "bf16" if row.get("artifact_precision") == "bf16" else None


def side_by_side(rows: pd.DataFrame, baseline: str, batch: int = 1, runs: int = 50, threads: int = 1
                 ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``rows`` (one per run and runtime) with ``latency_ms`` re-timed side by side and the paired ratios.

    Adds ``sbs_ms`` (p50 of this timing), ``x_faster_sbs`` (vs the baseline's fp32 ONNX in onnxruntime) and,
    when the baseline has an OpenVINO row, ``x_faster_vs_openvino`` (vs that row); ``latency_ms`` becomes
    the reference's p50 × the row's paired ratio wherever the row was re-timed (``sbs_ms`` keeps the row's own
    p50). Returns the frame and a description of the timing.
    """
    records = rows.to_dict("records")
    base = [i for i, r in enumerate(records) if r["run"] == baseline and timed_file(r)]
    ref = next((i for i in base if records[i]["runtime"] == REFERENCE_RUNTIME), None)
    if ref is None:  # before any packed row is unpacked
        raise HGCError(f"--side-by-side: the baseline {baseline!r} has no fp32 ONNX timed in {REFERENCE_RUNTIME} "
                       f"to compare against (its results.json or artifact is missing)")
    with tempfile.TemporaryDirectory(prefix="hgc-unpacked-") as scratch:
        return _timed(rows, records, [timed_file(r, scratch) for r in records], base, ref, batch, runs, threads)


def _timed(rows: pd.DataFrame, records: list[dict[str, Any]], files: list[str | None], base: list[int], ref: int,
           batch: int, runs: int, threads: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``side_by_side``'s timing: ``files[i]`` is row i's file (None: not re-timed), ``ref`` the reference row
    and ``base`` the baseline's rows (``records``: ``rows`` as dicts); the files must exist until it returns."""
    baseline = records[ref]["run"]
    order = [ref] + [i for i, f in enumerate(files) if f and i != ref]
    jobs = [(files[i], runtime_engine(records[i]["runtime"]), timed_hint(records[i])) for i in order]
    table = bench_side_by_side(jobs, batch=batch, runs=runs, threads=threads)
    host = machine_info()
    if any(engine == "openvino" for _, engine, _ in jobs):
        host["openvino_capabilities"] = " ".join(cpu_capabilities())
    ms = dict(zip(order, table["ms"]))
    p50 = dict(zip(order, table["p50_ms"]))
    ov_ref = next((i for i in base if records[i]["runtime"] == OPENVINO_RUNTIME), None)
    out = rows.copy()
    out["sbs_ms"] = [p50.get(i, math.nan) for i in range(len(records))]
    out["x_faster_sbs"] = [1 / paired_ratio(ms[i], ms[ref]) if i in ms else math.nan for i in range(len(records))]
    if ov_ref is not None:
        out["x_faster_vs_openvino"] = [1 / paired_ratio(ms[i], ms[ov_ref]) if i in ms else math.nan
                                       for i in range(len(records))]
    # the latency column (and the fronts drawn from it): the reference's p50 times the row's paired ratio, so a
    # burst of other work during some rounds moves every row alike instead of reordering them
    out["latency_ms"] = [p50[ref] * paired_ratio(ms[i], ms[ref]) if i in ms else lat
                         for i, lat in enumerate(rows["latency_ms"])]
    left = sorted({str(records[i]["run"]) + f" [{records[i]['runtime']}]"
                   for i in range(len(records)) if i not in ms and isinstance(records[i].get("runtime"), str)})
    info = {"rounds": runs, "settle": SETTLE_CALLS, "batch": batch, "threads": threads, "files": len(order),
            "reference": f"{baseline} [{REFERENCE_RUNTIME}]",
            "openvino_reference": f"{baseline} [{OPENVINO_RUNTIME}]" if ov_ref is not None else None,
            "not_retimed": left, "machine": host}
    return out, info
