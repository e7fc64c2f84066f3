"""Bytes on disk and bytes after generic compression (gzip -9, xz/lzma -9) of any artifact file.

The "zipped size" is what TF-MOT and Deep Compression report: it shows whether sparsity and shared
weights actually pay off, which raw bytes of a dense fp32 file cannot.
"""
from __future__ import annotations

import gzip
import lzma
import os

from compress.errors import HGCError


def file_sizes(path: str | os.PathLike) -> dict[str, int | float]:
    """``bytes``, ``gzip_bytes`` (gzip -9), ``lzma_bytes`` (xz preset 9) and their ratios to ``bytes``.

    An OpenVINO IR (``.xml``) counts with its ``.bin`` weights: the two files ship together.
    """
    if not os.path.isfile(path):
        raise HGCError(f"{path}: no such file")
    with open(path, "rb") as handle:
        data = handle.read()
    weights = os.path.splitext(path)[0] + ".bin"
    if str(path).endswith(".xml") and os.path.isfile(weights):
        with open(weights, "rb") as handle:
            data += handle.read()
    raw = len(data)
    gz = len(gzip.compress(data, compresslevel=9, mtime=0))
    xz = len(lzma.compress(data, format=lzma.FORMAT_XZ, preset=9))
    return {"bytes": raw, "gzip_bytes": gz, "lzma_bytes": xz,
            "gzip_ratio": gz / raw if raw else float("nan"), "lzma_ratio": xz / raw if raw else float("nan")}
