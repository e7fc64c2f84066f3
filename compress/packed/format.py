"""The ``.hgz`` container: magic, a SHA-256 checksum, then a versioned body (header + payload).

Layout (all integers little-endian)::

    b"HGZ\\x00"  sha256(body) (32 bytes)  body
    body = version (u16)  header length (u32)  header (lzma-compressed JSON)  payload

The checksum covers the whole body, the version included, and is checked before anything is parsed, so a
truncated or altered file is refused as damaged in one line; a body of a newer version is refused by name.
Nothing is unpickled: the header is JSON, the payload plain bytes the codec reads.
"""
from __future__ import annotations

import hashlib
import json
import lzma
import os
import struct
from typing import Any

from compress.errors import HGCError
from compress.io import atomic_path

MAGIC = b"HGZ\x00"
VERSION = 1
SUFFIX = ".hgz"
_PREFIX = struct.Struct("<HI")


def encode_body(header: dict[str, Any], payload: bytes) -> bytes:
    """The versioned body: version, header length, lzma-compressed JSON header, payload."""
    text = json.dumps(header, separators=(",", ":"), sort_keys=True, default=str).encode()
    packed_header = lzma.compress(text, format=lzma.FORMAT_XZ, preset=9 | lzma.PRESET_EXTREME)
    return _PREFIX.pack(VERSION, len(packed_header)) + packed_header + payload


def write_file(path: str | os.PathLike, header: dict[str, Any], payload: bytes) -> int:
    """Write the container atomically (temporary name + rename); returns the bytes on disk."""
    body = encode_body(header, payload)
    data = MAGIC + hashlib.sha256(body).digest() + body
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return len(data)


def decode(data: bytes, where: str) -> tuple[dict[str, Any], bytes]:
    """(header, payload) of a container's bytes; damaged, foreign or newer files are one ``HGCError``."""
    if data[:len(MAGIC)] != MAGIC:
        raise HGCError(f"{where}: not an hgc packed model (no HGZ magic)")
    digest, body = data[len(MAGIC):len(MAGIC) + 32], data[len(MAGIC) + 32:]
    if len(digest) < 32 or hashlib.sha256(body).digest() != digest:
        raise HGCError(f"{where}: damaged (checksum mismatch: the file is truncated or altered)")
    if len(body) < _PREFIX.size:
        raise HGCError(f"{where}: damaged (no header)")
    version, length = _PREFIX.unpack_from(body)
    if version > VERSION:
        raise HGCError(f"{where}: written in packed format version {version}; this hgc reads up to version "
                       f"{VERSION} (upgrade hourglass-compress)")
    try:
        header = json.loads(lzma.decompress(body[_PREFIX.size:_PREFIX.size + length]))
    except (lzma.LZMAError, ValueError) as exc:
        raise HGCError(f"{where}: damaged header ({exc})") from None
    if not isinstance(header, dict):
        raise HGCError(f"{where}: damaged header (not a mapping)")
    return header, body[_PREFIX.size + length:]


def read_file(path: str | os.PathLike) -> tuple[dict[str, Any], bytes]:
    """(header, payload) of an ``.hgz`` file, checksum and version checked."""
    if not os.path.isfile(path):
        raise HGCError(f"{path}: no such packed model file")
    with open(path, "rb") as handle:
        return decode(handle.read(), str(path))
