"""Entropy coders for the symbol streams of a packed model (codebook indices, sparse position gaps).

Every coder turns a stream of symbols in ``[0, alphabet)`` into bytes and back, losslessly:

* ``raw`` — fixed-width bit packing at ⌈log2 alphabet⌉ bits, no entropy coding (the reference);
* ``huffman`` — canonical Huffman (``compress.packed.huffman``), as in Deep Compression;
* ``ans`` — rANS from ``constriction`` with the stream's own symbol frequencies (16-bit table);
* ``zstd`` / ``lzma`` — the generic byte compressors on the bit-packed stream.

The stream length and the alphabet are known to the decoder (from the layer's shape and codebook), so no
coder stores them. ``best`` in the codec tries every coder per stream and keeps the smallest.
"""
from __future__ import annotations

import lzma
from typing import Callable

import constriction
import numpy as np
import zstandard

from compress.packed import bits, huffman

Encoder = Callable[[np.ndarray, int], bytes]
Decoder = Callable[[bytes, int, int], np.ndarray]
# a 1 MiB window covers the largest stream (hg2-128's 3x3 layers: 36,864 symbols); preset 9's 64 MiB
# window only costs set-up time per stream
_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 1 << 20}]
_ZSTD_LEVEL = 19
_FREQ_MAX = 65535


def _raw_encode(symbols: np.ndarray, alphabet: int) -> bytes:
    return bits.pack(symbols, bits.width(alphabet))


def _raw_decode(data: bytes, count: int, alphabet: int) -> np.ndarray:
    return bits.unpack(data, count, bits.width(alphabet))


def _zstd_encode(symbols: np.ndarray, alphabet: int) -> bytes:
    packer = zstandard.ZstdCompressor(level=_ZSTD_LEVEL, write_checksum=False, write_content_size=False,
                                      write_dict_id=False)
    return packer.compress(_raw_encode(symbols, alphabet))


def _zstd_decode(data: bytes, count: int, alphabet: int) -> np.ndarray:
    size = (count * bits.width(alphabet) + 7) // 8
    raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=max(size, 1))
    return _raw_decode(raw, count, alphabet)


def _lzma_encode(symbols: np.ndarray, alphabet: int) -> bytes:
    return lzma.compress(_raw_encode(symbols, alphabet), format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)


def _lzma_decode(data: bytes, count: int, alphabet: int) -> np.ndarray:
    return _raw_decode(lzma.decompress(data, format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS), count, alphabet)


def _frequencies(symbols: np.ndarray, alphabet: int) -> np.ndarray:
    """Symbol counts scaled into 16 bits (a used symbol keeps at least 1): the stored ANS model."""
    counts = np.bincount(symbols, minlength=alphabet).astype(np.float64)
    scaled = np.floor(counts * (_FREQ_MAX / max(counts.max(), 1.0)))
    return np.where(counts > 0, np.maximum(scaled, 1), 0).astype(np.uint16)


def _ans_model(freq: np.ndarray) -> "constriction.stream.model.Categorical":
    probabilities = freq.astype(np.float64) / float(freq.sum())
    return constriction.stream.model.Categorical(probabilities, perfect=False)


def _ans_encode(symbols: np.ndarray, alphabet: int) -> bytes:
    freq = _frequencies(symbols, alphabet)
    if np.count_nonzero(freq) <= 1:  # one symbol (or none): the table says it all
        return freq.tobytes()
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(np.asarray(symbols, dtype=np.int32), _ans_model(freq))
    return freq.tobytes() + coder.get_compressed().astype("<u4").tobytes()


def _ans_decode(data: bytes, count: int, alphabet: int) -> np.ndarray:
    table = 2 * alphabet
    if len(data) < table or (len(data) - table) % 4:
        raise ValueError("ANS stream is truncated")
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    freq = np.frombuffer(data[:table], dtype="<u2")
    if np.count_nonzero(freq) <= 1:
        return np.full(count, int(np.argmax(freq)), dtype=np.int64)
    words = np.frombuffer(data[table:], dtype="<u4").astype(np.uint32)
    coder = constriction.stream.stack.AnsCoder(words)
    return np.asarray(coder.decode(_ans_model(freq), count), dtype=np.int64)


CODERS: dict[str, tuple[Encoder, Decoder]] = {
    "raw": (_raw_encode, _raw_decode),
    "huffman": (huffman.encode, huffman.decode),
    "ans": (_ans_encode, _ans_decode),
    "zstd": (_zstd_encode, _zstd_decode),
    "lzma": (_lzma_encode, _lzma_decode),
}
NAMES = tuple(CODERS)


def encode(coder: str, symbols: np.ndarray, alphabet: int) -> bytes:
    """``symbols`` (ints in ``[0, alphabet)``) coded by ``coder``."""
    return CODERS[coder][0](np.asarray(symbols, dtype=np.int64), alphabet)


def decode(coder: str, data: bytes, count: int, alphabet: int) -> np.ndarray:
    """The ``count`` symbols ``encode(coder, …)`` wrote (int64); a damaged stream raises ``ValueError``."""
    out = CODERS[coder][1](data, count, alphabet)
    if len(out) != count or (count and (out.min() < 0 or out.max() >= alphabet)):
        raise ValueError(f"{coder} stream decoded to {len(out)} symbols outside the expected {count} in [0, {alphabet})")
    return out
