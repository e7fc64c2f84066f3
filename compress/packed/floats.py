"""The float block of a packed model: every value that is not a symbol stream, stored bit-exactly.

Dense tensors (BatchNorm parameters and statistics, biases, unclustered convolutions), codebooks and hash
buckets are appended here in the order the codec meets them. A float32 array whose every value survives
a round trip through float16 bit for bit is stored as float16, else as float32; int64 tensors
(BatchNorm's batch counters) as int64. Each of the three runs is byte-shuffled (all first bytes, then all
second bytes, … — exponents line up) and the whole block is compressed once with raw LZMA2, whose
``preset 9e`` did best on these runs. Unpacking returns the identical bit patterns.
"""
from __future__ import annotations

import lzma
import struct

import numpy as np

_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 1 << 24}]
KINDS = {"h": np.dtype("<f2"), "f": np.dtype("<f4"), "i": np.dtype("<i8")}
_COUNTS = struct.Struct("<QQQ")


def precision(values: np.ndarray) -> str:
    """``h`` if every float32 value is exactly a float16 (bit patterns compared), ``f`` otherwise; ``i`` for ints."""
    if values.dtype.kind in "iu":
        return "i"
    flat = np.ascontiguousarray(values, dtype=np.float32).ravel()
    with np.errstate(over="ignore", invalid="ignore"):
        back = flat.astype(np.float16).astype(np.float32)
    return "h" if np.array_equal(back.view(np.uint32), flat.view(np.uint32)) else "f"


def _shuffle(data: np.ndarray) -> bytes:
    return np.ascontiguousarray(data.view(np.uint8).reshape(-1, data.dtype.itemsize).T).tobytes()


def _unshuffle(raw: bytes, dtype: np.dtype, count: int) -> np.ndarray:
    planes = np.frombuffer(raw, dtype=np.uint8).reshape(dtype.itemsize, count)
    return np.ascontiguousarray(planes.T).view(dtype).ravel()


class Writer:
    """Collects arrays into the three runs; ``add`` says which run (``h``/``f``/``i``) took the array."""

    def __init__(self) -> None:
        self.runs: dict[str, list[np.ndarray]] = {kind: [] for kind in KINDS}

    def add(self, values: np.ndarray) -> str:
        kind = precision(values)
        self.runs[kind].append(np.ascontiguousarray(values).ravel().astype(KINDS[kind]))
        return kind

    def finish(self) -> bytes:
        """The compressed block: the three run lengths, then the shuffled runs, LZMA2-compressed."""
        runs = {k: np.concatenate(v) if v else np.zeros(0, KINDS[k]) for k, v in self.runs.items()}
        raw = _COUNTS.pack(*(len(runs[k]) for k in KINDS)) + b"".join(_shuffle(runs[k]) for k in KINDS)
        return lzma.compress(raw, format=lzma.FORMAT_RAW, filters=_FILTERS)


class Reader:
    """Hands the arrays of a block back in the order they were added (``take(kind, count)``)."""

    def __init__(self, block: bytes) -> None:
        raw = lzma.decompress(block, format=lzma.FORMAT_RAW, filters=_FILTERS)
        counts = _COUNTS.unpack_from(raw)
        offset, self.runs, self.used = _COUNTS.size, {}, dict.fromkeys(KINDS, 0)
        for kind, count in zip(KINDS, counts):
            size = count * KINDS[kind].itemsize
            if offset + size > len(raw):
                raise ValueError("float block is truncated")
            self.runs[kind] = _unshuffle(raw[offset:offset + size], KINDS[kind], count)
            offset += size

    def take(self, kind: str, count: int) -> np.ndarray:
        start = self.used[kind]
        if start + count > len(self.runs[kind]):
            raise ValueError(f"float block has too few {KINDS[kind]} values")
        self.used[kind] = start + count
        values = self.runs[kind][start:start + count]
        return values.astype(np.float32) if kind == "h" else values
