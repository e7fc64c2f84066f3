"""``hgc inspect`` and ``hgc bench`` as Python functions: cost, size and latency tables of model files.

Each returns pandas DataFrames (one row per model, or per model and batch size) that carry the machine
and library versions beside the numbers, so a CSV/JSON written from them is self-describing.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from compress.errors import HGCError
from compress.io import atomic_path, write_text
from compress.measure.cost import count_macs, count_params, load_onnx, onnx_macs, onnx_params, onnx_precision
from compress.measure.latency import SETTLE_CALLS, bench_images, ratio_summary, time_pairs, time_predictor
from compress.measure.machine import available_cores, deciding_features, machine_info
from compress.measure.peak import ort_peak, ov_peak, torch_peak
from compress.measure.sizes import file_sizes
from compress.nets import checkpoint
from compress.nets.config import HourglassConfig
from compress.nets.hourglass import StackedHourglass
from compress.onnx_meta import read_metadata
from compress.packed import SUFFIX, load_model, read_header
from compress.runtime import describe_predictor, load_predictor, resolve_providers
from compress.runtime_openvino import IR_SUFFIX, artifact_precision, model_metadata

MACHINE_COLUMNS = ("cpu", "isa", "cores", "gpu", "python", "torch", "onnxruntime", "openvino", "onnx", "numpy")


def model_cost(path: str) -> dict[str, Any]:
    """Parameters, MACs per image, precision, input size, config and metadata of a ``.pt`` or ``.onnx`` file.

    Packed ``.hgz`` files are measured through their unpacked network; other files get sizes only (NaN costs).
    """
    if not os.path.isfile(path):
        raise HGCError(f"{path}: no such model file")
    if path.endswith(".pt"):
        model, info = checkpoint.load(path)
        config = info.config
        return {"kind": "checkpoint", "precision": "fp32", "input_size": config.input_size,
                "params": count_params(model), "macs": count_macs(model, config.input_size),
                "config": config.to_dict(), "meta": info.meta, "lineage": info.lineage}
    if path.endswith(".onnx"):
        proto = load_onnx(path)
        meta = read_metadata(path)
        dims = proto.graph.input[0].type.tensor_type.shape.dim if proto.graph.input else []
        size = dims[2].dim_value if len(dims) == 4 and dims[2].HasField("dim_value") else \
            (meta.get("config") or {}).get("input_size")
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        recorded = artifact_precision(meta)  # bf16 runs from fp32 weights: only the metadata can tell
        return {"kind": "onnx", "precision": recorded if recorded == "bf16" else onnx_precision(proto),
                "input_size": size,
                "params": onnx_params(proto), "macs": onnx_macs(proto), "opset": opset,
                "config": meta.get("config"), "meta": meta.get("meta", {}), "lineage": meta.get("lineage", []),
                "metadata": meta}
    if path.endswith(IR_SUFFIX):
        return _ir_cost(path)
    if path.endswith(SUFFIX):
        model, info = load_model(path)
        header = read_header(path)
        packed = {"coder": header.get("coder"), "format": header.get("format"),
                  "tensors": {kind: sum(1 for e in header.get("tensors", []) if e[0] == kind)
                              for kind in sorted({e[0] for e in header.get("tensors", [])})}}
        return {"kind": "packed", "precision": "packed", "input_size": info.config.input_size,
                "params": count_params(model), "macs": count_macs(model, info.config.input_size),
                "config": info.config.to_dict(), "meta": info.meta, "lineage": info.lineage, "packed": packed}
    return {"kind": "file", "precision": None, "input_size": None, "params": math.nan, "macs": math.nan,
            "config": None, "meta": {}, "lineage": []}


def _ir_cost(path: str) -> dict[str, Any]:
    """Cost of an OpenVINO IR: params and MACs of the network its ``hgc`` config rebuilds (NaN without one)."""
    meta = model_metadata(path)
    config = meta.get("config")
    params = macs = math.nan
    if config:
        net = StackedHourglass(HourglassConfig.from_dict(config))
        params, macs = count_params(net), count_macs(net, net.config.input_size)
    export = meta.get("export") or {}
    return {"kind": "openvino-ir", "precision": artifact_precision(meta) or "fp32",
            "input_size": (config or {}).get("input_size"), "params": params, "macs": macs,
            "config": config, "meta": meta.get("meta", {}), "lineage": meta.get("lineage", []), "metadata": meta,
            "weights": export.get("weights")}


def config_summary(config: dict[str, Any] | None) -> str:
    """One line naming the architecture choices of a config dict ("" when unknown)."""
    if not config:
        return ""
    keys = ("stacks", "features", "depth", "modules", "block", "upsample", "skip", "norm", "input_size")
    text = " ".join(f"{k}={config[k]}" for k in keys if k in config)
    return text + (f" pruned-layers={len(config['widths'])}" if config.get("widths") else "")


def inspect_models(paths: Sequence[str]) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The size/cost table of ``paths`` and, per model, its full details (config, meta, lineage, metadata)."""
    rows, details = [], []
    for path in paths:
        cost, sizes = model_cost(path), file_sizes(path)
        rows.append({"model": path, "kind": cost["kind"], "precision": cost["precision"],
                     "input": cost["input_size"], "params": cost["params"],
                     "gmacs": cost["macs"] / 1e9 if not _isnan(cost["macs"]) else math.nan,
                     **{k: sizes[k] for k in ("bytes", "gzip_bytes", "lzma_bytes", "gzip_ratio", "lzma_ratio")}})
        details.append({"model": path, "config": config_summary(cost["config"]), "meta": cost["meta"],
                        "lineage": " → ".join(str(step.get("op")) for step in cost["lineage"]),
                        **({"opset": cost["opset"], "parity": cost["metadata"].get("parity"),
                            "accuracy": cost["metadata"].get("accuracy")}
                           if cost["kind"] == "onnx" else {}),
                        **({"packed": cost["packed"]} if cost["kind"] == "packed" else {})})
    return pd.DataFrame(rows), details


def _isnan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


@dataclass
class BenchResult:
    """Latency rows (one per model × batch), machine peaks (one per runtime/provider) and the machine."""

    table: pd.DataFrame
    peaks: pd.DataFrame
    machine: dict[str, Any] = field(default_factory=dict)


def _peak_key(predictor: Any) -> tuple[str, str]:
    runtime = predictor.runtime
    return ("torch" if runtime.startswith("torch") else runtime, str(predictor.provider))


def measure_peaks(predictors: Sequence[Any], threads: int, device: str, provider: str | None,
                  size: int = 2048) -> pd.DataFrame:
    """Peak fp32/int8 GMAC/s for each runtime+provider among ``predictors`` (or onnxruntime and torch if none).

    ``size`` is the side of the square matrices (2048: large enough to hide call overhead on a CPU).
    """
    keys: dict[tuple[str, str], Any] = {_peak_key(p): p for p in predictors}
    if not keys:
        providers = resolve_providers(provider, device)
        keys = {("onnxruntime", providers[0]): None, ("torch", "cuda" if device.startswith("cuda") else "cpu"): None}
    rows = []
    for (runtime, prov), predictor in keys.items():
        if runtime == "torch":
            peak = torch_peak(threads, device if prov == "cuda" else "cpu", size=size)
        elif runtime == "openvino":
            peak = ov_peak(threads, predictor.precision_hint, size=size)
        else:
            chain = resolve_providers(prov, device) if predictor is None else predictor.session.get_providers()
            device_id = int(device.partition(":")[2] or 0) if device.startswith("cuda") else 0
            peak = ort_peak(threads, list(chain), device_id, size=size)
        rows.append({"runtime": runtime, "provider": prov, "threads": threads, "fp32_gmac_s": peak["fp32"],
                     "int8_gmac_s": peak["int8"], "fp32_gflop_s": 2 * peak["fp32"], "int8_gop_s": 2 * peak["int8"]})
    return pd.DataFrame(rows)


def file_labels(paths: Sequence[str], runtimes: Sequence[str | None] = ()) -> list[str]:
    """Short unique names of files for table columns: base names, full paths where those collide."""
    several = len(set(runtimes)) > 1  # the same file on several runtimes: say which is which
    keys = list(zip(paths, runtimes)) if several else [(p, None) for p in paths]
    short = [(os.path.basename(p), r) for p, r in keys]
    names = short if len(set(short)) == len(short) else keys
    return [f"{n} [{r}]" if several else n for n, r in names]


def _runs_on(path: str, runtime: str | None) -> bool:
    """Whether ``runtime`` can run the file (with several ``--runtime`` values, the other pairs are left out)."""
    kind = "ir" if path.endswith(".xml") else "onnx" if path.endswith(".onnx") else "pt"
    return runtime is None or runtime in {"ir": ("openvino",), "onnx": ("onnxruntime", "openvino"),
                                          "pt": ("torch",)}[kind]


def _predictor(path: str, runtime: str | None, device: str, provider: str | None, threads: int, compile: bool,
               precision: str | None) -> Any:
    """One predictor of ``bench_models``: options that concern another engine are left out per file."""
    ov = runtime == "openvino" or path.endswith(".xml")
    return load_predictor(path, device=device, provider=provider if path.endswith(".onnx") and not ov else None,
                          threads=threads, compile=compile if path.endswith(".pt") else False, runtime=runtime,
                          precision=precision if ov else None)


def bench_models(paths: Sequence[str], *, batches: Sequence[int] = (1, 8), runs: int = 50, warmup: int = 10,
                 threads: int | None = None, device: str = "cpu", provider: str | None = None, pair: bool = False,
                 peak: bool = False, compile: bool = False, peak_size: int = 2048,
                 runtimes: Sequence[str | None] = (None,), precision: str | None = None,
                 settle: int = SETTLE_CALLS) -> BenchResult:
    """Time each model at each batch size (p50/p90/p99 ms) with fixed intra-op threads.

    ``runtimes`` (onnxruntime, openvino, torch; None: by file type) times every model on each of them, so
    ``pair`` can alternate the same file across runtimes; ``precision`` is OpenVINO's precision hint
    (default: the artifact's, else the plugin's own), recorded with streams and the executed precision.
    ``pair`` alternates the models A B … per run, each timed call after ``settle`` untimed ones of the same
    model, and adds per-round ratios to the first model;
    ``peak`` measures the runtime's fp32/int8 matrix-product peak and each model's efficiency
    = (MACs / p50 latency) / peak of its precision (int8 files against the int8 peak, fp32 and fp16
    files against the fp32 peak; ``peak_size``: matrix side of the peak probe).
    ``provider`` applies to ONNX files only; ``threads`` defaults to all available cores, always recorded.
    """
    if threads is not None and threads < 1:
        raise HGCError(f"--threads {threads}: must be ≥ 1")
    runtimes = list(runtimes) or [None]
    jobs = [(path, rt) for path in paths for rt in runtimes if len(runtimes) == 1 or _runs_on(path, rt)]
    if pair and len(jobs) < 2:
        raise HGCError("--pair needs at least two models (A B), or one model on two --runtime values")
    if not paths and not peak:
        raise HGCError("bench: give at least one model file (or --peak alone for the machine's peak)")
    if any(b < 1 for b in batches) or runs < 1 or warmup < 0 or settle < 0:
        raise HGCError(f"bench: batches and runs must be ≥ 1, warmup and settle ≥ 0 "
                       f"(got {list(batches)}, {runs}, {warmup}, {settle})")
    threads = threads or available_cores()
    machine = {**machine_info(), "threads": threads}
    machine["deciding"] = deciding_features(machine.get("isa") or "")
    predictors = [_predictor(p, rt, device, provider, threads, compile, precision) for p, rt in jobs]
    if any(p.runtime == "openvino" for p in predictors):
        machine["openvino_capabilities"] = " ".join(next(p for p in predictors if p.runtime == "openvino").capabilities)
    paths = [p for p, _ in jobs]
    costs = [model_cost(p) for p in paths]
    labels = file_labels(paths, [p.runtime for p in predictors])
    peaks = measure_peaks(predictors, threads, device, provider, peak_size) if peak else pd.DataFrame()
    rows = []
    for batch in batches:
        images = [bench_images(p.input_size, batch) for p in predictors]
        if pair:
            timings = time_pairs(predictors, images, runs=runs, warmup=warmup, settle=settle)
        else:
            timings = [time_predictor(p, x, runs=runs, warmup=warmup) for p, x in zip(predictors, images)]
        for label, predictor, cost, timing in zip(labels, predictors, costs, timings):
            stats = timing.summary()
            ov = describe_predictor(predictor) if predictor.runtime == "openvino" else {}
            row = {"model": label, "runtime": predictor.runtime, "provider": predictor.provider, "device": device,
                   "threads": threads, "batch": batch,
                   "graph_batch": predictor.batch or ("compiled per batch" if ov else "dynamic"),
                   "streams": ov.get("streams"), "precision_hint": ov.get("precision_hint"),
                   "executed": ov.get("executed", cost["precision"]),
                   "runs": runs, "warmup": warmup, **stats, "precision": cost["precision"],
                   "params": cost["params"], "gmacs": cost["macs"] / 1e9,
                   "gmac_s": cost["macs"] * batch / (stats["p50_ms"] * 1e-3) / 1e9}
            if pair:
                row.update(ratio_summary(timing, timings[0]), reference=labels[0])
            if peak:
                match = peaks[(peaks.runtime == _peak_key(predictor)[0]) & (peaks.provider == _peak_key(predictor)[1])]
                column = "int8_gmac_s" if cost["precision"] == "int8" else "fp32_gmac_s"
                row["peak_gmac_s"] = float(match[column].iloc[0])
                row["efficiency"] = row["gmac_s"] / row["peak_gmac_s"]
            rows.append({**row, **{k: machine.get(k) for k in MACHINE_COLUMNS}})
    return BenchResult(table=pd.DataFrame(rows), peaks=peaks, machine=machine)


def bench_side_by_side(jobs: Sequence[tuple[str, str | None, str | None]], *, batch: int = 1, runs: int = 50,
                       warmup: int = 5, threads: int = 1) -> pd.DataFrame:
    """Time many ``(file, runtime, precision hint)`` jobs round-robin in one process, the first as reference.

    Every round runs each job once, back to back, so a machine slowed by other work slows all of them alike;
    ``ratio_median`` is the median over rounds of (job's time / reference's time in that round), and ``ms`` the
    per-round times, for ratios to another row (``paired_ratio``). This is how a
    report compares artifacts made by separate runs (``hgc report --side-by-side``).
    """
    if len(jobs) < 2:
        raise HGCError("side-by-side timing needs the reference and at least one other file")
    if batch < 1 or runs < 1 or warmup < 0 or threads < 1:
        raise HGCError(f"side-by-side timing: batch, runs and threads must be ≥ 1 and warmup ≥ 0 "
                       f"(got {batch}, {runs}, {threads}, {warmup})")
    predictors = [_predictor(path, runtime, "cpu", None, threads, False, hint) for path, runtime, hint in jobs]
    images = [bench_images(p.input_size, batch) for p in predictors]
    timings = time_pairs(predictors, images, runs=runs, warmup=warmup)
    rows = []
    for (path, _, _), predictor, timing in zip(jobs, predictors, timings):
        ov = describe_predictor(predictor) if predictor.runtime == "openvino" else {}
        rows.append({"file": path, "runtime": predictor.runtime, "batch": batch, "threads": threads, "runs": runs,
                     "precision_hint": ov.get("precision_hint"), "executed": ov.get("executed"),
                     **timing.summary(), **ratio_summary(timing, timings[0]), "ms": list(timing.ms)})
    return pd.DataFrame(rows)


def paired_ratio(ms: Sequence[float], reference_ms: Sequence[float]) -> float:
    """Median over rounds of ``ms[r] / reference_ms[r]`` (two rows of one ``bench_side_by_side`` table)."""
    if len(ms) != len(reference_ms) or not len(ms):
        raise ValueError("paired ratios need two timings of the same rounds")
    return float(np.median(np.asarray(ms, dtype=np.float64) / np.asarray(reference_ms, dtype=np.float64)))


def format_table(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> str:
    """An aligned plain-text table of the chosen columns (floats to 3 significant decimals)."""
    if frame.empty:
        return "(no rows)"
    shown = frame[[c for c in (columns or frame.columns) if c in frame.columns]]
    return shown.to_string(index=False, float_format=lambda v: f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}")


def check_outputs(*paths: str | None) -> None:
    """Refuse output paths in missing directories before any measuring starts (one-line ``HGCError``)."""
    for path in paths:
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise HGCError(f"{path}: output directory {os.path.dirname(path) or '.'} does not exist")


def write_frame(frame: pd.DataFrame, csv_path: str | None = None, json_path: str | None = None,
                extra: dict[str, Any] | None = None) -> None:
    """Write a table atomically as CSV and/or JSON (``{**extra, "rows": [...]}``; NaN becomes null).

    DataFrames inside ``extra`` are written as lists of records too.
    """
    if csv_path:
        with atomic_path(csv_path) as tmp:
            frame.to_csv(tmp, index=False)
    if json_path:
        payload = {**(extra or {}), "rows": frame}
        write_text(json_path, json.dumps(_plain(payload), indent=2, default=str, allow_nan=False) + "\n")


def _plain(value: Any) -> Any:
    """JSON-ready copy: DataFrames → records, NaN/inf → None, numpy scalars → Python numbers."""
    if isinstance(value, pd.DataFrame):
        return _plain(value.to_dict(orient="records"))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
