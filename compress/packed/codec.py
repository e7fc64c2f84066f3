"""Per-tensor coding of a state dict into a packed payload, and back, bit for bit.

Each tensor, in ``state_dict`` order, becomes one entry of the header's ``tensors`` list:

* ``["x", seed, K, run]`` — a HashedNets layer: K bucket values (float block) + its seed; rebuilt by hashing;
* ``["c", run, u, coder, n]`` — at most 256 distinct values: the sorted codebook (float block) and one
  index per weight in an entropy-coded stream of n bytes (``u`` symbols, ⌈log2 u⌉ bits raw);
* ``["C", run, sizes, coder, n]`` — the same per output channel (``sizes``: codebook size of each row);
* ``["s", bits, gaps, coder, n, values]`` — a sparse tensor: the positions of its non-zeros as relative
  index gaps of ``bits`` bits (the top symbol is a filler: skip 2**bits − 1 zeros, no value), ``gaps``
  symbols coded in n bytes; ``values`` is the entry of the non-zero values alone (``c`` or ``d``);
* ``["d", run]`` — stored as is in the float block (float16 when exact, float32, int64).

``run`` names the float-block run (``h``/``f``/``i``). The sparse form is kept only where it is smaller.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from compress.packed import bits, coders, floats, hashing

MAX_CODEBOOK = 256
BEST = "best"
GAP_BITS = (2, 3, 4, 5, 6, 8)


@dataclass
class Encoded:
    """A coded state dict: header entries, payload, and what each tensor cost (for reports)."""

    entries: list[list[Any]]
    payload: bytes
    block_bytes: int
    layers: list[dict[str, Any]] = field(default_factory=list)


class _Streams:
    """Symbol streams coded with one coder (or the smallest of all with ``best``)."""

    def __init__(self, coder: str) -> None:
        self.coder, self.segments = coder, []

    def add(self, symbols: np.ndarray, alphabet: int) -> tuple[str, int]:
        names = coders.NAMES if self.coder == BEST else (self.coder,)
        options = [(coders.encode(name, symbols, alphabet), name) for name in names]
        data, name = min(options, key=lambda option: len(option[0]))
        self.segments.append(data)
        return name, len(data)


def _codebook_entry(values: np.ndarray, block: floats.Writer, streams: _Streams) -> list[Any] | None:
    """``["c", …]`` for a flat float array with ≤ MAX_CODEBOOK distinct values, else None."""
    codebook, indices = np.unique(values, return_inverse=True)
    if len(codebook) > MAX_CODEBOOK or len(codebook) >= max(2, values.size // 2):
        return None
    run = block.add(codebook)
    coder, size = streams.add(indices.ravel(), len(codebook))
    return ["c", run, len(codebook), coder, size]


def _channel_entry(values: np.ndarray, block: floats.Writer, streams: _Streams) -> list[Any] | None:
    """``["C", …]`` when every output channel (row) has ≤ MAX_CODEBOOK distinct values, else None."""
    rows = values.reshape(values.shape[0], -1)
    books = [np.unique(row, return_inverse=True) for row in rows]
    sizes = [len(book) for book, _ in books]
    if max(sizes) > MAX_CODEBOOK or sum(sizes) >= values.size // 2:
        return None
    run = block.add(np.concatenate([book for book, _ in books]))
    coder, size = streams.add(np.concatenate([idx.ravel() for _, idx in books]), max(sizes))
    return ["C", run, sizes, coder, size]


def _gaps(flat: np.ndarray, bits: int) -> np.ndarray:
    """Relative index symbols of the non-zeros of ``flat`` with ``bits``-bit gaps (filler = 2**bits − 1)."""
    filler = (1 << bits) - 1
    positions = np.flatnonzero(flat)
    gaps = np.diff(positions, prepend=-1) - 1
    fills = gaps // filler
    out = np.full(int(fills.sum()) + len(gaps), filler, dtype=np.int64)
    ends = np.cumsum(fills + 1) - 1
    out[ends] = gaps % filler
    return out


def _sparse_entry(flat: np.ndarray, block: floats.Writer, streams: _Streams) -> list[Any]:
    """``["s", …]``: relative-index positions of the non-zeros, then their values (codebook or as is)."""
    bits = min(GAP_BITS, key=lambda b: len(_gaps(flat, b)) * b)
    symbols = _gaps(flat, bits)
    coder, size = streams.add(symbols, 1 << bits)
    nonzero = flat[flat != 0]
    values = _codebook_entry(nonzero, block, streams) if nonzero.size else None
    return ["s", bits, len(symbols), coder, size, values or ["d", block.add(nonzero)]]


def _cost(block: floats.Writer, streams: _Streams) -> int:
    """Stream bytes plus raw float-block bytes of a trial entry (what choosing it would cost)."""
    return sum(map(len, streams.segments)) + sum(a.nbytes for run in block.runs.values() for a in run)


def _merge(into_block: floats.Writer, into: _Streams, block: floats.Writer, streams: _Streams) -> None:
    for kind, arrays in block.runs.items():
        into_block.runs[kind].extend(arrays)
    into.segments.extend(streams.segments)


def encode_tensor(name: str, tensor: torch.Tensor, block: floats.Writer, streams: _Streams,
                  hashed: dict[str, tuple[int, int]]) -> list[Any]:
    """The header entry of one tensor; its arrays go to ``block`` and its streams to ``streams``."""
    values = tensor.detach().cpu().contiguous().numpy()
    if values.dtype != np.float32:
        return ["d", block.add(values)]
    if name in hashed:
        seed, count = hashed[name]
        buckets = hashing.recover(values, seed, count)
        if buckets is not None:
            return ["x", seed, count, block.add(buckets)]
    flat = values.ravel()
    candidates = []
    for make in (_codebook_entry, _channel_entry if values.ndim > 1 else None,
                 _sparse_entry if np.count_nonzero(flat) <= 0.9 * flat.size else None):
        if make is None:
            continue
        trial_block, trial_streams = floats.Writer(), _Streams(streams.coder)
        entry = make(flat if make is not _channel_entry else values, trial_block, trial_streams)
        if entry is not None:
            candidates.append((_cost(trial_block, trial_streams), entry, trial_block, trial_streams))
    if not candidates:
        return ["d", block.add(values)]
    cost, entry, trial_block, trial_streams = min(candidates, key=lambda c: c[0])
    if entry[0] == "s" and entry[5][0] == "d" and cost >= values.nbytes:
        return ["d", block.add(values)]
    _merge(block, streams, trial_block, trial_streams)
    return entry


def _raw_bytes(count: int, alphabet: int) -> int:
    """Bytes of ``count`` symbols bit-packed at ⌈log2 alphabet⌉ bits (what coder ``raw`` stores)."""
    return (count * bits.width(alphabet) + 7) // 8


def stored_sizes(entry: list[Any], numel: int, nonzero: int) -> tuple[int, int]:
    """(raw stream bytes, float values in the float block) of one header entry, computed from the entry.

    Raw stream bytes are its symbol streams bit-packed at ⌈log2 alphabet⌉ bits per symbol (coder ``raw``);
    float values are the numbers it puts in the float block (codebooks, dense floats, hash buckets; int64
    tensors are not float values). ``nonzero`` is the tensor's count of non-zeros (a sparse entry's values).
    """
    kind = entry[0]
    if kind == "x":
        return 0, int(entry[2])
    if kind == "d":
        return 0, 0 if entry[1] == "i" else numel
    if kind == "c":
        return _raw_bytes(numel, entry[2]), int(entry[2])
    if kind == "C":
        return _raw_bytes(numel, max(entry[2])), int(sum(entry[2]))
    if kind == "s":
        raw, values = _raw_bytes(entry[2], 1 << entry[1]), 0
        inner = entry[5]
        if inner[0] == "c":
            raw, values = raw + _raw_bytes(nonzero, inner[2]), inner[2]
        else:
            values = nonzero
        return raw, int(values)
    raise ValueError(f"unknown tensor entry kind {kind!r}")


def encode_state(state: dict[str, torch.Tensor], coder: str, hashed: dict[str, tuple[int, int]] | None = None
                 ) -> Encoded:
    """Entries + payload (float block, then every stream) of ``state``; ``coder`` in ``coders.NAMES`` or ``best``.

    Each ``layers`` row says how one tensor was stored: ``kind``, ``numel``, ``weights`` (its float values,
    0 for int64), ``nonzero`` (its non-zero float values), ``conv_zeros`` (exact zeros of a 4-D float
    tensor, i.e. a convolution's weight), ``stream_bytes`` (coded), ``raw_stream_bytes`` (bit-packed at
    ⌈log2 alphabet⌉ bits per symbol) and ``float_values`` (numbers it put in the float block).
    """
    block, streams, entries, layers = floats.Writer(), _Streams(coder), [], []
    for name, tensor in state.items():
        before = len(streams.segments)
        entry = encode_tensor(name, tensor, block, streams, hashed or {})
        entries.append(entry)
        is_float = tensor.is_floating_point()
        nonzero = int(torch.count_nonzero(tensor)) if is_float else 0
        raw, values = stored_sizes(entry, tensor.numel(), nonzero)
        layers.append({"name": name, "kind": entry[0], "numel": tensor.numel(),
                       "weights": tensor.numel() if is_float else 0, "nonzero": nonzero,
                       "conv_zeros": tensor.numel() - nonzero if is_float and tensor.dim() == 4 else 0,
                       "stream_bytes": sum(len(s) for s in streams.segments[before:]),
                       "raw_stream_bytes": raw, "float_values": values})
    data = block.finish()
    return Encoded(entries, data + b"".join(streams.segments), len(data), layers)


class _Cursor:
    """Reads the payload's streams in order."""

    def __init__(self, payload: bytes, offset: int) -> None:
        self.payload, self.offset = payload, offset

    def next(self, size: int) -> bytes:
        if self.offset + size > len(self.payload):
            raise ValueError("payload is truncated")
        data = self.payload[self.offset:self.offset + size]
        self.offset += size
        return data


def _decode_values(entry: list[Any], count: int, reader: floats.Reader, cursor: _Cursor) -> np.ndarray:
    """``count`` float32 values from a ``c`` or ``d`` entry."""
    if entry[0] == "d":
        return reader.take(entry[1], count)
    _, run, size, coder, nbytes = entry
    codebook = reader.take(run, size)
    return codebook[coders.decode(coder, cursor.next(nbytes), count, size)]


def decode_tensor(entry: list[Any], like: torch.Tensor, reader: floats.Reader, cursor: _Cursor) -> torch.Tensor:
    """The tensor of one header entry, shaped and typed like ``like`` (the rebuilt model's tensor)."""
    shape, count, kind = tuple(like.shape), like.numel(), entry[0]
    if kind == "x":
        _, seed, buckets, run = entry
        values = hashing.materialise(reader.take(run, buckets), seed, shape)
    elif kind in ("c", "d"):
        values = _decode_values(entry, count, reader, cursor)
    elif kind == "C":
        _, run, sizes, coder, nbytes = entry
        books = reader.take(run, sum(sizes))
        indices = coders.decode(coder, cursor.next(nbytes), count, max(sizes)).reshape(len(sizes), -1)
        offsets = np.cumsum([0, *sizes[:-1]])
        if np.any(indices >= np.asarray(sizes)[:, None]):
            raise ValueError("per-channel index outside its codebook")
        values = books[indices + offsets[:, None]]
    elif kind == "s":
        _, bits, length, coder, nbytes, inner = entry
        filler = (1 << bits) - 1
        symbols = coders.decode(coder, cursor.next(nbytes), length, 1 << bits)
        real = symbols != filler
        positions = (np.cumsum(np.where(real, symbols + 1, filler)) - 1)[real]
        if len(positions) and positions[-1] >= count:
            raise ValueError("sparse position outside the tensor")
        values = np.zeros(count, dtype=np.float32)
        values[positions] = _decode_values(inner, len(positions), reader, cursor)
    else:
        raise ValueError(f"unknown tensor entry kind {kind!r}")
    out = torch.from_numpy(np.ascontiguousarray(values).reshape(shape).copy())
    return out if out.dtype == like.dtype else out.to(like.dtype)


def decode_state(entries: list[list[Any]], payload: bytes, block_bytes: int,
                 reference: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], float]:
    """The state dict (keys and shapes of ``reference``) from entries and payload; and the decode seconds."""
    started = time.perf_counter()
    if len(entries) != len(reference):
        raise ValueError(f"{len(entries)} tensor entries for a model of {len(reference)} tensors")
    reader, cursor = floats.Reader(payload[:block_bytes]), _Cursor(payload, block_bytes)
    state = {name: decode_tensor(entry, like, reader, cursor)
             for entry, (name, like) in zip(entries, reference.items())}
    if cursor.offset != len(payload):
        raise ValueError("payload has trailing bytes")
    return state, time.perf_counter() - started
