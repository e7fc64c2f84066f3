"""Run-directory bookkeeping: atomic JSON files, step input hashes, the run lock, finished and reused steps.

Kept apart from the runner so the demo and the sweep can hold a lock or write a record without a run.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
from pathlib import Path
from typing import Any

from compress.errors import HGCError
from compress.io import sha256_file, write_text


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


def clear_step(step_dir: Path) -> None:
    """An empty ``step_dir`` (whatever a failed or outdated attempt left is deleted)."""
    if step_dir.exists():
        shutil.rmtree(step_dir)
    step_dir.mkdir(parents=True)


def remove_stale_steps(run_dir: Path, keep: set[str]) -> None:
    """Delete step directories a previous version of the recipe left (``NN-op`` not in ``keep``)."""
    for child in run_dir.iterdir():
        if child.is_dir() and re.fullmatch(r"\d\d-.+", child.name) and child.name not in keep:
            shutil.rmtree(child)


def finished_step(step_dir: Path, digest: str, target: Path, artifact_root: Path | None = None
                  ) -> dict[str, Any] | None:
    """``done.json`` if it records ``digest`` and its output file (and artifact) still have the recorded sha256.

    ``done.json``'s ``artifact`` is a path relative to ``artifact_root`` (default ``step_dir``); a missing or
    changed artifact means the step is not finished, so it runs again instead of feeding a stale file on.
    """
    done = read_json(step_dir / "done.json")
    if not done or done.get("input_hash") != digest or not target.is_file():
        return None
    if sha256_file(target) != done.get("output_sha256"):
        return None
    if done.get("artifact"):
        path = (artifact_root or step_dir) / str(done["artifact"])
        if not path.is_file() or sha256_file(path) != done.get("artifact_sha256"):
            return None
    return done


def reuse_sibling(step_dir: Path, digest: str) -> tuple[str, dict[str, Any]] | None:
    """Copy a finished step with the same input hash from another run under the same ``--out`` (a sweep's runs
    that share their first steps); returns that run's name and the copy's ``done.json``, or None.

    The input hash covers the parent's sha256, the op, its parameters, the code version, the budget, the data
    and the teacher, so the copy is exactly what running the step here would have produced.
    """
    run_dir = step_dir.parent
    for sibling in sorted(run_dir.parent.iterdir()):
        donor = sibling / step_dir.name
        if sibling == run_dir or not donor.is_dir() or not finished_step(donor, digest, donor / "model.pt"):
            continue
        clear_step(step_dir)
        staging = run_dir / f".{step_dir.name}.reuse"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(donor, staging, ignore=shutil.ignore_patterns("attempt.json"))
        step_dir.rmdir()
        os.replace(staging, step_dir)
        done = finished_step(step_dir, digest, step_dir / "model.pt")  # checked like any finished step
        if done:
            return sibling.name, done
        clear_step(step_dir)
    return None
