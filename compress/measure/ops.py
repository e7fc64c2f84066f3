"""Where an ONNX model's time goes in onnxruntime: milliseconds per operator type, from its own profiler.

A MACs count predicts the time of the convolutions only. Pruning halves them, but the ops that move whole
feature maps without much arithmetic (the pre-activation BatchNorm + ReLU pairs the graph optimiser cannot
fold into a conv, residual Adds, max-pool, upsampling) shrink only with the channels they carry, and the
kernels of narrower convs run further from the machine's peak. ``op_profiles`` runs the optimised graph
with onnxruntime's profiler on (the same session options as every timing here) and sums each kernel's
time by operator type over the timed runs; several files run round-robin, so base and pruned files
can be compared op type by op type under the same load.
The profiler's own overhead is spread over every kernel: read the shares, and take latencies from
``hgc bench --pair``.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import onnxruntime as ort
import pandas as pd

from compress.errors import HGCError, first_line
from compress.measure.bench import file_labels
from compress.measure.latency import bench_images
from compress.runtime import image_input, session_options


def _feed(session: ort.InferenceSession, path: str, batch: int) -> dict[str, np.ndarray]:
    """The fixed benchmark batch in the file's input type; a batch the file's graph does not take is one line."""
    image = image_input(session, path)
    if image.batch is not None and image.batch != batch:
        raise HGCError(f"{path}: the file's batch size is fixed at {image.batch}; "
                       f"profile it with --batch {image.batch}")
    return {image.name: bench_images(image.size, batch).astype(image.dtype)}


def _kernel_times(trace: list[dict], runs: int) -> tuple[dict[str, float], dict[str, int], int]:
    """(µs per op type summed over the last ``runs`` model runs, kernels per op type in one run, runs found).

    Fewer runs are found when the profiler stopped recording (it caps its events); the caller divides by those.
    """
    model_runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in trace if e.get("name") == "model_run")[-runs:]
    if not model_runs:
        return {}, {}, 0
    start, end = model_runs[0][0], model_runs[-1][1]
    micros: dict[str, float] = defaultdict(float)
    kernels: dict[str, int] = defaultdict(int)
    for event in trace:
        if event.get("cat") != "Node" or not str(event.get("name", "")).endswith("_kernel_time"):
            continue
        if start <= event["ts"] <= end:
            op = event.get("args", {}).get("op_name", "?")
            micros[op] += event["dur"]
            kernels[op] += 1
    return micros, {op: count // len(model_runs) for op, count in kernels.items()}, len(model_runs)


def _profiled(path: str, prefix: str, batch: int, threads: int | None) -> tuple[ort.InferenceSession, dict]:
    """A profiling onnxruntime session on ``path`` and its feed (the fixed benchmark batch)."""
    if not str(path).endswith(".onnx"):
        raise HGCError(f"{path}: not an ONNX file (profiling times .onnx files; export a checkpoint first: hgc export)")
    if not os.path.isfile(path):
        raise HGCError(f"{path}: no such file")
    options = session_options(threads)
    options.enable_profiling = True
    options.profile_file_prefix = prefix
    options.log_severity_level = 4  # a file that fails to load is our one error line, not the profiler's too
    try:
        session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own exception classes
        raise HGCError(f"{path}: onnxruntime cannot load it: {first_line(exc)}") from None
    return session, _feed(session, path, batch)


def _frame(trace: list[dict], runs: int, path: str) -> pd.DataFrame:
    micros, kernels, found = _kernel_times(trace, runs)
    if not found:
        raise HGCError(f"{path}: onnxruntime's profile recorded no run (try fewer --runs)")
    total = sum(micros.values()) or 1.0
    rows = [{"op_type": op, "kernels": kernels[op], "ms": us / found / 1000.0, "share": us / total}
            for op, us in micros.items()]
    return pd.DataFrame(rows, columns=["op_type", "kernels", "ms", "share"]).set_index("op_type")


def op_profiles(paths: Sequence[str], *, batch: int = 1, runs: int = 20, warmup: int = 5,
                threads: int | None = 1) -> pd.DataFrame:
    """Per operator type of each file's optimised graph: kernels per run, ms per run, share of the kernel time.

    The files run round-robin (one run of each in turn), so load from other work on the machine falls on
    all of them alike. One row per op type (and the sum of all kernels); columns ``kernels:<file>``,
    ``ms:<file>``, ``share:<file>``, and for every file after the first ``x:<file>``: the first file's ms
    over this file's (how many times faster that op type runs in it).
    """
    if not paths:
        raise HGCError("profile: name at least one ONNX file")
    if len(set(paths)) != len(paths):
        raise HGCError(f"profile: a file is listed twice ({', '.join(paths)})")
    if runs < 1 or warmup < 0 or batch < 1 or (threads is not None and threads < 1):
        raise HGCError(f"profile: runs ({runs}), batch ({batch}) and threads ({threads}) must be ≥ 1, "
                       f"warmup ({warmup}) ≥ 0")
    labels = file_labels(paths)
    with tempfile.TemporaryDirectory() as tmp:
        sessions = [_profiled(path, os.path.join(tmp, f"profile{i}"), batch, threads) for i, path in enumerate(paths)]
        for _ in range(warmup + runs):
            for (session, feed), path in zip(sessions, paths):
                try:
                    session.run(None, feed)
                except Exception as exc:  # onnxruntime's own exception classes
                    raise HGCError(f"{path}: onnxruntime cannot run it: {first_line(exc)}") from None
        traces = []
        for session, _ in sessions:
            with open(session.end_profiling()) as handle:
                traces.append(json.load(handle))
    frames = [_frame(trace, runs, path).rename(columns=lambda c, label=label: f"{c}:{label}")
              for trace, label, path in zip(traces, labels, paths)]
    table = pd.concat(frames, axis=1).fillna(0.0).sort_values(f"ms:{labels[0]}", ascending=False)
    table.loc["(all kernels)"] = table.sum()
    for label in labels[1:]:
        first, this = table[f"ms:{labels[0]}"], table[f"ms:{label}"]
        table[f"x:{label}"] = first.where(first > 0) / this.where(this > 0)  # an op one file lacks: blank
    return table.reset_index(names="op_type")
