"""The size section of a report: packed runs against the baseline's fp32 ONNX, stage by stage.

For every run whose last step is ``pack`` (and the baseline, for reference): PCKh@0.5 and @0.1 as the runner
scored the ``.hgz`` (through its unpacked network), bytes on disk, × vs the baseline's fp32 ONNX, bits per
weight, the raw/gzip/lzma bytes of the same network as an fp32 ONNX, and the stage factors of
``compress.packed.stages`` (ONNX ×, pruning ×, sparsity ×, clustering ×, entropy ×, floats+header ×) whose
product is the × vs the baseline. Coders compared at pack time (``pack: {compare_coders: true}``) get a
second table.
"""
from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Callable
from typing import Any

import pandas as pd

from compress.io import sha256_file
from compress.packed.model import load_model
from compress.packed.stages import STAGES, float_values, stage_chain

SIZE_KEYS = ("weights", "conv_zeros", "nonzero", "float_values", "raw_stream_bytes", "stream_bytes",
             "float_block_bytes", "header_bytes", "file_bytes")
DISPLAY = {"run": "run", "pckh": "PCKh@0.5", "pckh01": "PCKh@0.1", "packed_bytes": ".hgz bytes",
           "total_x": "× vs base ONNX", "bits_per_weight": "bits/weight", "onnx_bytes": "fp32 ONNX bytes",
           "onnx_gzip_bytes": "gzip", "onnx_lzma_bytes": "lzma", "onnx_x": "ONNX ×", "pruning_x": "pruning ×",
           "sparsity_x": "sparsity ×", "clustering_x": "clustering ×", "entropy_x": "entropy ×",
           "floats_header_x": "floats+header ×"}
LEGEND = ("× vs base ONNX = the baseline's fp32 ONNX bytes / the .hgz bytes; it is exactly the product of the six "
          "stage factors (`compress/packed/stages.py`): ONNX × = baseline ONNX bytes / its float values at 4 "
          "bytes; pruning × = the baseline's / this model's float values; sparsity × = float values / those left "
          "after removing the exact zeros of the convolutions; clustering × = those at 4 bytes / the streams "
          "bit-packed at ⌈log2 alphabet⌉ bits plus the float block's numbers at 4 bytes (codebooks, hash "
          "buckets, dense tensors); entropy × = that / the same with the streams entropy-coded; floats+header × "
          "= that / the file (float16 + LZMA float block, header, checksum). PCKh is the .hgz's, scored through "
          "its unpacked network; bits/weight = 8 · bytes / float values; raw/gzip/lzma: the same network as "
          "an fp32 ONNX file.")


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def baseline_values(row: dict[str, Any]) -> float:
    """W0, the baseline's float values: recorded by the runner, else counted in its base checkpoint.

    The fallback serves results written before the runner recorded ``float_values``: a baseline without
    steps is its base checkpoint, used only if it is still there with the recorded SHA-256.
    """
    if math.isfinite(_num(row.get("float_values"))):
        return _num(row["float_values"])
    base, digest = row.get("base"), row.get("base_sha256")
    if row.get("n_steps") == 0 and isinstance(base, str) and os.path.isfile(base) and sha256_file(base) == digest:
        return float(float_values(load_model(base)[0].state_dict()))
    return math.nan


def size_table(raw: pd.DataFrame, baseline: str | None) -> pd.DataFrame:
    """One row per packed run (the baseline first, for reference) with the size columns and stage factors.

    ``raw`` is ``results_table``'s one row per run (PCKh as the runner scored the artifact). Empty when no
    run has a pack step.
    """
    packed = raw[raw["pack_coder"].notna()] if "pack_coder" in raw.columns else raw.iloc[0:0]
    if packed.empty:
        return pd.DataFrame(columns=list(DISPLAY))
    base = raw[raw.run == baseline].to_dict("records")[0] if baseline in set(raw.run) else {}
    b_bytes, w0 = _num(base.get("bytes")), baseline_values(base) if base else math.nan
    rows = []
    if base:
        rows.append({"run": base["run"], "pckh": base["pckh"], "pckh01": base["pckh01"], "packed_bytes": math.nan,
                     "total_x": 1.0, "bits_per_weight": 8 * b_bytes / w0 if w0 else math.nan,
                     "onnx_bytes": b_bytes, "onnx_gzip_bytes": _num(base.get("gzip_bytes")),
                     "onnx_lzma_bytes": _num(base.get("lzma_bytes")), "baseline": True})
    for r in packed.to_dict("records"):
        if r["run"] == baseline:
            continue
        sizes = {k: _num(r.get(f"pack_{k}")) for k in SIZE_KEYS}
        chain = stage_chain(sizes, b_bytes, w0) if all(map(math.isfinite, sizes.values())) else {}
        rows.append({"run": r["run"], "pckh": r["pckh"], "pckh01": r["pckh01"], "packed_bytes": r["bytes"],
                     "total_x": b_bytes / r["bytes"] if r["bytes"] else math.nan,
                     "bits_per_weight": _num(r.get("pack_bits_per_weight")),
                     "onnx_bytes": _num(r.get("unpacked_bytes")), "onnx_gzip_bytes": _num(r.get("unpacked_gzip_bytes")),
                     "onnx_lzma_bytes": _num(r.get("unpacked_lzma_bytes")), "baseline": False, "coder": r["pack_coder"],
                     **{k: chain.get(k, math.nan) for k in (*STAGES, "entropy_streams_x")},
                     **{f"pack_{k}": v for k, v in sizes.items()}})
    return pd.DataFrame(rows)


def _cells(table: pd.DataFrame) -> pd.DataFrame:
    shown = table.reindex(columns=list(DISPLAY)).copy()

    def fmt(spec: str, v: Any) -> str:
        return spec.format(v) if isinstance(v, (int, float)) and math.isfinite(v) else ""

    for col in shown.columns[1:]:
        spec = "{:.2f}" if col.startswith("pckh") or col == "bits_per_weight" else \
            "{:,.0f}" if col.endswith("bytes") else "{:.2f}×"
        shown[col] = [fmt(spec, v) for v in shown[col]]
    return shown.rename(columns=DISPLAY)


def coder_rows(raw: pd.DataFrame) -> pd.DataFrame:
    """Per packed run that compared coders: each coder's payload, streams, float block, bits/weight, seconds."""
    rows = []
    for r in raw.to_dict("records"):
        if isinstance(r.get("pack_coders"), str):
            for c in json.loads(r["pack_coders"]):
                rows.append({"run": r["run"], "coder": c["coder"] + (" (used)" if c["coder"] == r["pack_coder"] else ""),
                             "payload bytes": f"{c['payload_bytes']:,}", "streams": f"{c['stream_bytes']:,}",
                             "float block": f"{c['float_block_bytes']:,}", "bits/weight": f"{c['bits_per_weight']:.2f}",
                             "encode s": f"{c['encode_s']:.3g}", "decode s": f"{c['decode_s']:.3g}"})
    return pd.DataFrame(rows)


def size_section(table: pd.DataFrame, coders: pd.DataFrame, markdown: Callable[[pd.DataFrame], str]) -> list[str]:
    """Markdown lines of the section (nothing without a packed run); ``markdown`` renders a DataFrame."""
    if table.empty:
        return []
    lines = ["## Sizes of the packed models", "", markdown(_cells(table)), "", LEGEND, ""]
    if not table.baseline.any():
        lines += ["No baseline run: the ratios against its fp32 ONNX, ONNX × and pruning × are blank.", ""]
    elif table[table.baseline].bits_per_weight.isna().all():
        lines += [("The baseline's float values are unknown (results written before the runner recorded "
                   "`float_values`, and its base checkpoint is not at hand): ONNX × and pruning × are blank."), ""]
    if not coders.empty:
        lines += ["### Every coder on the same model (`pack: {compare_coders: true}`)", "", markdown(coders),
                  "", "Payload = float block + coded streams (no header); each coder codes the whole model.", ""]
    return lines


def size_html(table: pd.DataFrame, coders: pd.DataFrame) -> str:
    """The same section as HTML (empty without a packed run)."""
    if table.empty:
        return ""
    out = "<h2>Sizes of the packed models</h2>" + _cells(table).to_html(index=False, escape=True, border=0)
    out += f"<p>{html.escape(LEGEND).replace('`', '')}</p>"
    if not coders.empty:
        out += "<h3>Every coder on the same model</h3>" + coders.to_html(index=False, escape=True, border=0)
    return out
