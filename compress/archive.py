"""``hgc archive``: keep a finished run's report row — its ``results.json`` and the files that row describes.

A run directory holds every step's checkpoints and phase files (tens of MB) on the machine that ran it. A
report whose rows were made in different sessions, or on different machines, needs of each run only its row
and its evaluated artifact: ``hgc report`` reads an archived run exactly as it reads the run directory, and
``--side-by-side`` re-times the archived artifact, so the report can be remade anywhere with one command.

Kept, under ``OUT/<run name>/`` at the same relative paths: ``results.json``, ``recipe.yaml`` (what made it),
the artifact (an OpenVINO IR with its ``.bin``; a packed ``.hgz`` alone: the report's timing unpacks it again
to the fp32 ONNX the runtimes time, so its ten times larger copy is not kept), the artifact checked against
the sha256 the run recorded. With ``checkpoint=True`` (``hgc archive --checkpoint``) also the last recipe
step's ``model.pt``: run directories live only as long as the machine that ran them, and this checkpoint is
what ``hgc ship`` copies into ``models/`` and what a later recipe can continue from (``base:``) — a student
checkpoint is a few MB. The copy is made in a hidden temporary directory (which ``hgc report`` skips) and
renamed into place.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from compress.errors import HGCError
from compress.io import sha256_file
from compress.results import finished_results
from compress.runtime_openvino import IR_SUFFIX


@dataclass
class ArchivedRun:
    """Where a run's row was kept, which files (relative to it) and their bytes in all."""

    path: str
    name: str
    files: list[str]
    bytes: int
    unchanged: bool  # the same run was archived there before: nothing written


def archive_files(run: Path, results: dict[str, Any], extra: Sequence[str] = ()) -> list[str]:
    """The run-relative files a report row needs, ``results.json`` last; the artifact is checked against the
    sha256 the run recorded (an IR's ``.bin`` is copied as it is); ``extra`` (the checkpoint) joins them."""
    artifact = results.get("artifact") or {}
    rel = str(artifact.get("path") or "")
    if Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise HGCError(f"archive: {run / 'results.json'}: artifact path {rel!r} is not inside the run directory")
    path = run / rel
    if not rel or not path.is_file():
        raise HGCError(f"archive: {run / 'results.json'}: its artifact {rel!r} is missing from the run directory")
    if artifact.get("sha256") and sha256_file(path) != artifact["sha256"]:
        raise HGCError(f"archive: {path}: changed since the run recorded it (sha256 differs): rerun the recipe")
    files = [rel]
    if path.suffix == IR_SUFFIX:
        files.append(str(Path(rel).with_suffix(".bin")))
    files += extra
    if (run / "recipe.yaml").is_file():
        files.append("recipe.yaml")
    files.append("results.json")  # last: a copy cut short holds no row a report would read
    missing = [f for f in files if not (run / f).is_file()]
    if missing:
        raise HGCError(f"archive: {run / missing[0]}: missing (the run directory is incomplete)")
    return files


def _last_checkpoint(run: Path, results: dict[str, Any]) -> str:
    steps = results.get("steps") or []
    if not steps:
        raise HGCError(f"archive: {run}: --checkpoint: the run has no recipe steps (its model is the base checkpoint)")
    rel = str(Path(str(steps[-1].get("dir") or "")) / "model.pt")
    if Path(rel).is_absolute() or ".." in Path(rel).parts or not (run / rel).is_file():
        raise HGCError(f"archive: {run / rel}: --checkpoint: the last step's checkpoint is missing")
    want = steps[-1].get("output_sha256")
    if want and sha256_file(run / rel) != want:
        raise HGCError(f"archive: {run / rel}: changed since the run recorded it (sha256 differs): rerun the recipe")
    return rel


def _copy_into(run: Path, target: Path, rel: str) -> None:
    """Copy one file of ``run`` into the archived ``target`` under a temporary name, then rename it."""
    (target / rel).parent.mkdir(parents=True, exist_ok=True)
    scratch = target / Path(rel).parent / f".{Path(rel).name}.partial"
    try:
        shutil.copyfile(run / rel, scratch)
        scratch.rename(target / rel)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise


def archive_run(run_dir: str, out: str, checkpoint: bool = False) -> ArchivedRun:
    """Copy ``run_dir``'s report row into ``out/<run name>/`` (see the module docstring for what is kept).

    Archiving the same run again is a no-op (``checkpoint`` adds a checkpoint it lacks); a different run under that
    name is an error, never overwritten.
    """
    run, root = Path(run_dir), Path(out)
    results = finished_results(run, "archive")
    addable = [_last_checkpoint(run, results)] if checkpoint else []
    files = archive_files(run, results, addable)
    name = str(results["name"])
    target = root / name
    if not root.is_dir():
        raise HGCError(f"archive: -o {out}: no such directory")
    size = sum((run / f).stat().st_size for f in files)
    if target.exists():  # the same run again: nothing to do, or only its checkpoint to add (--checkpoint)
        absent = [f for f in files if not (target / f).is_file()]
        if any(sha256_file(target / f) != sha256_file(run / f) for f in files if f not in absent) \
                or (absent and absent != addable):
            raise HGCError(f"archive: {target} already holds a different run named {name!r}: remove it first")
        if absent:
            _copy_into(run, target, absent[0])
        return ArchivedRun(str(target), name, files, size, unchanged=not absent)
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        for rel in files:
            (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run / rel, scratch / rel)
        scratch.chmod(0o755)
        scratch.rename(target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return ArchivedRun(str(target), name, files, size, unchanged=False)
