"""Atomic file writes and content hashes.

Every file the toolkit writes goes to a temporary name in the target directory and is renamed into
place, so an interrupted run never leaves a half-written artifact behind.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from compress.errors import HGCError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``, on failure delete it."""
    target = Path(path)
    check_output(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; finished files get the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def check_output(path: str | os.PathLike) -> None:
    """Fail early (before hours of work) if ``path`` cannot become a file: missing directory, or a directory."""
    target = Path(path)
    if not target.parent.is_dir():
        raise HGCError(f"{target}: output directory {target.parent} does not exist")
    if target.is_dir():
        raise HGCError(f"{target}: is a directory, expected a file path")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (lineage and resume use it to recognise inputs)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
