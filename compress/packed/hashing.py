"""The HashedNets index and sign hashes: a virtual weight tensor drawn from K shared buckets.

Element i (flat index) of a hashed layer is ``sign(i) · buckets[bucket(i)]``. Both hashes are a 32-bit
multiply–xorshift mix (the MurmurHash3 finaliser) of the index and the layer's seed, computed in numpy
with explicit 32-bit wrap-around, so training (which builds its index buffers here) and unpacking
compute the same integers on every machine. Only the buckets and the seed are stored.
"""
from __future__ import annotations

import math
import zlib

import numpy as np

_GOLDEN = np.uint64(0x9E3779B1)
_MASK = np.uint64(0xFFFFFFFF)
_SIGN_SALT = 0x5BD1E995


def mix32(values: np.ndarray, seed: int) -> np.ndarray:
    """A 32-bit hash of each non-negative integer in ``values`` under ``seed`` (uint64 holding 32 bits)."""
    x = (np.asarray(values, dtype=np.uint64) * _GOLDEN + np.uint64(seed & 0xFFFFFFFF)) & _MASK
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x85EBCA6B)) & _MASK
    x ^= x >> np.uint64(13)
    x = (x * np.uint64(0xC2B2AE35)) & _MASK
    x ^= x >> np.uint64(16)
    return x


def layer_seed(seed: int, name: str) -> int:
    """The 32-bit seed of layer ``name`` under a run's ``seed`` (stored in the packed file as is)."""
    return (zlib.crc32(name.encode()) ^ (seed * 0x27D4EB2F)) & 0xFFFFFFFF


def bucket_count(numel: int, ratio: float) -> int:
    """K = ⌈numel / ratio⌉ buckets (at least 2) for a layer of ``numel`` virtual weights."""
    return max(2, math.ceil(numel / ratio))


def buckets_and_signs(numel: int, seed: int, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """(bucket index in [0, K), sign ±1 as int8) of each of the ``numel`` virtual weights."""
    index = np.arange(numel, dtype=np.uint64)
    bucket = (mix32(index, seed) % np.uint64(buckets)).astype(np.int64)
    sign = np.where(mix32(index, seed ^ _SIGN_SALT) >> np.uint64(31), -1, 1).astype(np.int8)
    return bucket, sign


def materialise(values: np.ndarray, seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """The virtual weight tensor of ``shape`` from its bucket ``values`` (float32) and ``seed``."""
    numel = int(np.prod(shape))
    bucket, sign = buckets_and_signs(numel, seed, len(values))
    values = np.asarray(values, dtype=np.float32)
    return np.where(sign > 0, values[bucket], -values[bucket]).reshape(shape)


def recover(weight: np.ndarray, seed: int, buckets: int) -> np.ndarray | None:
    """The bucket values a hashed ``weight`` was drawn from, or None if it is not exactly such a tensor.

    A bucket no element uses gets 0. The result rebuilds ``weight`` bit for bit (checked on the bit
    patterns, so -0.0 and NaN count too).
    """
    flat = np.ascontiguousarray(weight, dtype=np.float32).ravel()
    bucket, sign = buckets_and_signs(flat.size, seed, buckets)
    values = np.zeros(buckets, dtype=np.float32)
    signed = np.where(sign > 0, flat, -flat)
    values[bucket[::-1]] = signed[::-1]  # the first member of each bucket wins
    rebuilt = materialise(values, seed, flat.shape)
    return values if np.array_equal(rebuilt.view(np.uint32), flat.view(np.uint32)) else None
