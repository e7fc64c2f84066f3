"""Canonical Huffman coding in numpy (Deep Compression's entropy coder), vectorised both ways.

Only the code length of each symbol is stored (one byte per symbol of the alphabet); codes are assigned
canonically (by length, then symbol). Decoding needs no per-symbol Python loop: the symbol that would
start at every bit position is read off a sorted table of left-justified code limits, and the chain of
real symbol starts is followed by pointer doubling (O(bits · log symbols) vectorised work).
"""
from __future__ import annotations

import heapq

import numpy as np

MAX_LENGTH = 24  # longest code; longer ones are avoided by flattening the counts


def code_lengths(counts: np.ndarray) -> np.ndarray:
    """Huffman code length of each symbol (0 for unused ones), limited to ``MAX_LENGTH`` bits."""
    counts = np.asarray(counts, dtype=np.int64)
    used = np.flatnonzero(counts)
    lengths = np.zeros(len(counts), dtype=np.int64)
    if len(used) == 1:
        lengths[used] = 1
        return lengths
    weights = counts.copy()
    while True:
        heap = [(int(weights[s]), int(s), (int(s),)) for s in used]
        heapq.heapify(heap)
        depth = dict.fromkeys(map(int, used), 0)
        tie = len(counts)
        while len(heap) > 1:
            w1, _, a = heapq.heappop(heap)
            w2, _, b = heapq.heappop(heap)
            for symbol in a + b:
                depth[symbol] += 1
            heapq.heappush(heap, (w1 + w2, tie, a + b))
            tie += 1
        for symbol, d in depth.items():
            lengths[symbol] = d
        if lengths.max() <= MAX_LENGTH:
            return lengths
        weights[used] = (weights[used] + 1) // 2  # flatten the distribution and retry


def _canonical(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(code of each symbol, symbols in canonical order) for the given code lengths."""
    order = np.lexsort((np.arange(len(lengths)), lengths))
    order = order[lengths[order] > 0]
    codes = np.zeros(len(lengths), dtype=np.int64)
    code, previous = 0, int(lengths[order[0]]) if len(order) else 0
    for symbol in order:
        length = int(lengths[symbol])
        code <<= length - previous
        codes[symbol], previous = code, length
        code += 1
    return codes, order


def encode(symbols: np.ndarray, alphabet: int) -> bytes:
    """Code lengths (one byte per symbol of the alphabet) followed by the canonical Huffman bit stream."""
    symbols = np.asarray(symbols, dtype=np.int64)
    lengths = code_lengths(np.bincount(symbols, minlength=alphabet))
    codes, _ = _canonical(lengths)
    if not len(symbols):
        return lengths.astype(np.uint8).tobytes()
    sym_len, sym_code = lengths[symbols], codes[symbols]
    top = int(sym_len.max())
    keep = np.arange(top)[None, :] < sym_len[:, None]
    # bit j (of top) of a symbol is bit (len - 1 - j) of its code; positions past its length are dropped
    planes = (sym_code[:, None] >> (sym_len[:, None] - 1 - np.arange(top)[None, :]).clip(min=0)) & 1
    return lengths.astype(np.uint8).tobytes() + np.packbits(planes[keep].astype(np.uint8)).tobytes()


def decode(data: bytes, count: int, alphabet: int) -> np.ndarray:
    """The ``count`` symbols of a stream written by ``encode`` for an alphabet of ``alphabet`` symbols."""
    lengths = np.frombuffer(data[:alphabet], dtype=np.uint8).astype(np.int64)
    if len(lengths) < alphabet or count == 0:
        if len(lengths) < alphabet:
            raise ValueError("Huffman table is truncated")
        return np.zeros(0, dtype=np.int64)
    codes, order = _canonical(lengths)
    top = int(lengths.max())
    bits = np.unpackbits(np.frombuffer(data[alphabet:], dtype=np.uint8)).astype(np.int64)
    total = len(bits)
    padded = np.concatenate([bits, np.zeros(top, dtype=np.int64)])
    window = np.zeros(total, dtype=np.int64)  # the next ``top`` bits at every position, as an integer
    for j in range(top):
        window = (window << 1) | padded[j:j + total]
    sorted_lengths = lengths[order]
    limits = (codes[order] + 1) << (top - sorted_lengths)  # left-justified end of each code, increasing
    rank = np.searchsorted(limits, window, side="right").clip(max=len(order) - 1)
    step = sorted_lengths[rank]
    # the chain of symbol starts 0, p1, p2, … by pointer doubling over "next start" links
    jump = np.append(np.minimum(np.arange(total) + step, total), total)
    starts = np.zeros(1, dtype=np.int64)
    while len(starts) < count:
        starts = np.concatenate([starts, jump[starts]])
        jump = jump[jump]
    starts = starts[:count]
    if starts[-1] >= total or starts[-1] + step[starts[-1]] > total:
        raise ValueError("Huffman stream is truncated")
    return order[rank[starts]]
