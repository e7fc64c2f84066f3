"""Fixed-width bit packing of symbol streams (MSB first), the input of the generic byte coders.

Indices into a codebook of k entries take ⌈log2 k⌉ bits each; the same packing is what ``raw`` stores.
"""
from __future__ import annotations

import numpy as np


def width(alphabet: int) -> int:
    """Bits per symbol for an alphabet of ``alphabet`` symbols (⌈log2⌉, at least 1)."""
    return max(1, int(alphabet - 1).bit_length())


def pack(symbols: np.ndarray, bits: int) -> bytes:
    """``symbols`` (non-negative, < 2**bits) as a bit string of ``bits`` bits each, zero-padded to a byte."""
    values = np.asarray(symbols, dtype=np.uint32)
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint32)
    planes = ((values[:, None] >> shifts) & 1).astype(np.uint8)
    return np.packbits(planes.ravel()).tobytes()


def unpack(data: bytes, count: int, bits: int) -> np.ndarray:
    """The first ``count`` symbols of ``bits`` bits each from ``data`` (inverse of ``pack``)."""
    if len(data) * 8 < count * bits:
        raise ValueError(f"bit stream holds {len(data) * 8} bits, {count * bits} needed")
    flat = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=count * bits)
    weights = (1 << np.arange(bits - 1, -1, -1, dtype=np.int64))
    return flat.reshape(count, bits).astype(np.int64) @ weights
