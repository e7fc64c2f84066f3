"""Run-directory bookkeeping: JSON files written atomically, step input hashes, and the run lock.

Kept apart from the runner so the demo and the sweep can hold a lock or write a record without a run.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path
from typing import Any

from compress.errors import HGCError
from compress.io import write_text


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when it is missing or unreadable.

    Bookkeeping files that do not parse count as absent, so a torn write only costs recomputation.
    """
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON through a temporary file and a rename.

    Readers therefore see the old file or the new one, never a half-written one.
    """
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def input_hash(inputs: dict[str, Any]) -> str:
    """SHA-256 of the canonical (sorted-key) JSON of a step's inputs.

    Equal inputs give equal hashes on any machine, which is what lets a re-run skip finished steps.
    """
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


class RunLock:
    """``<run>/.lock`` (pid + host) so two processes never work in one run directory.

    A lock left by a killed process on this host is taken over; one from another host must be removed by hand.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / ".lock"
        self.held = False

    def __enter__(self) -> RunLock:
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                owner = read_json(self.path) or {}
                pid = owner.get("pid")
                if not isinstance(pid, int) or isinstance(pid, bool):
                    raise HGCError(f"{self.path}: unreadable run lock (no process id in it); if no other hgc run "
                                   f"is using {self.path.parent}, remove {self.path} and run again") from None
                if owner.get("host") == me["host"] and not _alive(pid):
                    self.path.unlink(missing_ok=True)
                    continue
                raise HGCError(f"{self.path.parent}: in use by pid {owner.get('pid')} on {owner.get('host')} "
                               f"(remove {self.path} if that run is dead)") from None
            with os.fdopen(fd, "w") as handle:
                json.dump(me, handle)
            self.held = True
            return self
        raise HGCError(f"{self.path}: could not take the run lock")

    def __exit__(self, *exc: object) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
