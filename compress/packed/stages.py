"""Where a packed model's size comes from: the per-stage factors of the size report, exact by construction.

Seven byte counts, each computed from the files and the codec's per-tensor record (nothing estimated),
lead from the baseline's fp32 ONNX file to the ``.hgz``:

====  ==========================================================================================
B     bytes of the baseline's fp32 ONNX file
A0    4 · W0: the baseline model's float values at fp32 (every float tensor of its state dict,
      BatchNorm statistics included)
A1    4 · W: this model's float values at fp32
A2    4 · (W − Z): the same without the Z exact zeros of its convolution weights (4-D float tensors)
A3    raw streams + 4 · V: its symbol streams (codebook indices, sparse positions) bit-packed at
      ⌈log2 alphabet⌉ bits per symbol, as coder ``raw`` stores them, plus the V numbers its float block
      holds (codebooks, dense tensors, hash buckets) at fp32
A4    coded streams + 4 · V: the same with the streams entropy-coded as in the file
F     bytes of the ``.hgz`` file
====  ==========================================================================================

The factors are the ratios of neighbours, so their product is B / F, the ratio against the baseline's fp32
ONNX, exactly (up to float rounding):

* **ONNX ×** = B / A0: the baseline's ONNX file against its raw fp32 tensors (graph, names; BatchNorms
  the exporter folds into convolutions make it > 1);
* **pruning ×** = A0 / A1: structured pruning's fewer channels (1 without it);
* **sparsity ×** = A1 / A2: the exact zeros of the convolutions (unstructured pruning);
* **clustering ×** = A2 / A3: storing what remains at fixed width — indices at ⌈log2 k⌉ bits and codebooks
  instead of fp32 values, sparse positions, dense tensors at fp32. A hashed layer counts its virtual weight
  tensor in W and its K buckets in V with no stream (its indices are recomputed from the seed), so
  HashedNets' sharing shows here too. Below 1 where a layer pays for zeros it stores (a dense or codebook
  layer keeps its zeros) or for positions without sharing (a sparse, unclustered layer);
* **entropy ×** = A3 / A4: the entropy coder on the streams, over the whole fixed-width model (so that
  the product stays exact); ``entropy_streams_x`` is the coder's ratio on the streams alone;
* **floats+header ×** = A4 / F: the float block (float16 where exact, byte shuffle, LZMA) against fp32
  numbers, less the header (config, lineage, tensor entries; LZMA-compressed JSON), the checksum and the
  int64 BatchNorm counters. The explicit remainder: > 1 when the float block's savings outweigh the header.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

STAGES = ("onnx_x", "pruning_x", "sparsity_x", "clustering_x", "entropy_x", "floats_header_x")
PACK_STAGES = STAGES[2:]  # what the packed file alone determines (no baseline needed)


def float_values(state: dict[str, torch.Tensor]) -> int:
    """W: the number of float values in a state dict (every floating-point tensor, buffers included)."""
    return sum(t.numel() for t in state.values() if t.is_floating_point())


def pack_sizes(layers: Iterable[dict[str, Any]], block_bytes: int, file_bytes: int) -> dict[str, int]:
    """The packed model's counts: W, Z, V, raw and coded stream bytes, float block, header and file bytes.

    ``layers`` are ``codec.encode_state``'s per-tensor rows; ``block_bytes`` the compressed float block;
    ``file_bytes`` the whole ``.hgz``. ``header_bytes`` is the rest: magic, checksum, version and the header.
    """
    rows = list(layers)
    stream = sum(r["stream_bytes"] for r in rows)
    return {"weights": sum(r["weights"] for r in rows), "conv_zeros": sum(r["conv_zeros"] for r in rows),
            "nonzero": sum(r["nonzero"] for r in rows), "float_values": sum(r["float_values"] for r in rows),
            "raw_stream_bytes": sum(r["raw_stream_bytes"] for r in rows), "stream_bytes": stream,
            "float_block_bytes": block_bytes, "header_bytes": file_bytes - block_bytes - stream,
            "file_bytes": file_bytes}


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def pack_stages(sizes: dict[str, int]) -> dict[str, float]:
    """sparsity ×, clustering ×, entropy × and floats+header × of a packed file (their product: A1 / F).

    Also ``x_vs_fp32_tensors`` (A1 / F, the product) and ``entropy_streams_x`` (raw / coded streams alone).
    """
    a1 = 4 * sizes["weights"]
    a2 = 4 * (sizes["weights"] - sizes["conv_zeros"])
    a3 = sizes["raw_stream_bytes"] + 4 * sizes["float_values"]
    a4 = sizes["stream_bytes"] + 4 * sizes["float_values"]
    return {"sparsity_x": _ratio(a1, a2), "clustering_x": _ratio(a2, a3), "entropy_x": _ratio(a3, a4),
            "floats_header_x": _ratio(a4, sizes["file_bytes"]), "x_vs_fp32_tensors": _ratio(a1, sizes["file_bytes"]),
            "entropy_streams_x": _ratio(sizes["raw_stream_bytes"], sizes["stream_bytes"])}


def stage_chain(sizes: dict[str, int], baseline_bytes: float, baseline_values: float) -> dict[str, float]:
    """Every factor of ``STAGES`` and ``total_x`` = baseline ONNX bytes / file bytes (= their product).

    ``baseline_bytes`` is B, ``baseline_values`` W0; an unknown one (NaN) blanks the factors that need it.
    """
    chain = pack_stages(sizes)
    chain["onnx_x"] = _ratio(baseline_bytes, 4 * baseline_values)
    chain["pruning_x"] = _ratio(4 * baseline_values, 4 * sizes["weights"])
    chain["total_x"] = _ratio(baseline_bytes, sizes["file_bytes"])
    return chain
