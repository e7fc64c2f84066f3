"""``hgc ship``: copy a finished run's model into ``models/`` with a card whose numbers are measured on the copy.

A report names its best model; shipping it means anyone can re-evaluate and re-time that exact file with one
command. The card says which recipe made it (and the command to make it again), what each step did, its
bytes, its PCKh as evaluated from the shipped file, and its speed measured side by side against the base
checkpoint's fp32 ONNX export on every installed CPU runtime — with the commands that reproduce each number.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compress.errors import HGCError
from compress.evaluate import evaluate_file
from compress.export import export_onnx
from compress.io import atomic_path, check_output, sha256_file, write_text
from compress.measure.bench import bench_side_by_side, model_cost, paired_ratio
from compress.measure.machine import deciding_features, machine_info
from compress.packed.format import SUFFIX as PACKED_SUFFIX
from compress.results import finished_results
from compress.runtime_openvino import IR_SUFFIX
from compress.runtime_openvino import available as openvino_available

SHIPPABLE = (".pt", ".onnx", PACKED_SUFFIX, IR_SUFFIX)


@dataclass
class ShipResult:
    """What was shipped: the file, its card, and the numbers the card states."""

    path: str
    card: str
    sha256: str
    bytes: int  # on disk: an IR's .xml and .bin together
    pckh: float
    pckh01: float
    run_pckh: float | None
    speed: list[dict[str, Any]] = field(default_factory=list)  # per runtime: base/this p50 ms, ×faster paired


def ship_run(run_dir: str, out: str, *, rounds: int = 50, threads: int = 1, limit: int | None = None,
             timing: bool = True, reference: str | None = None) -> ShipResult:
    """Copy ``run_dir``'s model to ``out`` (its suffix picks the last step's ``.pt`` or the run's artifact), then
    evaluate the copy, time it beside the base's fp32 ONNX and write the card ``out`` with ``.md``.

    ``reference`` is the checkpoint the card times and sizes against (default: the run's base); a run that
    starts from a derived model (a pruned checkpoint in ``models/``) names the original here.

    Nothing is written when the run is unfinished, the suffix matches nothing the run made, or the file changed
    since the run recorded its sha256.
    """
    run = Path(run_dir)
    results = finished_results(run, "ship")
    source, note = _source_file(run, results, Path(out).suffix)
    target, card_path = Path(out), Path(out).with_suffix(".md")
    check_output(target)
    if rounds < 2 or threads < 1 or (limit is not None and limit < 1):
        raise HGCError(f"ship: --rounds must be ≥ 2 and --threads, --limit ≥ 1 (got {rounds}, {threads}, {limit})")
    base = str(reference or results["base"])
    if timing and not Path(base).is_file():
        where = "--reference" if reference else f"{run / 'results.json'}: base checkpoint"
        raise HGCError(f"{where} {base} is not here: run from the repository root the run was made in, "
                       f"or pass --no-timing")

    data = (results.get("evaluate") or {}).get("data") or "synthetic:val"
    report = evaluate_file(str(source), data, limit=limit)  # the same bytes as the copy (sha256 checked)
    speed = _time_beside_base(str(source), base, rounds, threads) if timing else []
    if source.suffix == IR_SUFFIX:  # an IR is two files: the weights first, the .xml last
        with atomic_path(target.with_suffix(".bin")) as tmp:
            shutil.copyfile(source.with_suffix(".bin"), tmp)
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    weights = target.with_suffix(".bin") if target.suffix == IR_SUFFIX else None
    result = ShipResult(path=str(target), card=str(card_path), sha256=sha256_file(target),
                        bytes=target.stat().st_size + (weights.stat().st_size if weights else 0),
                        pckh=report.result.mean, pckh01=report.result.mean_01,
                        run_pckh=results.get("pckh_mean"), speed=speed)
    write_text(card_path, card_text(result, results, run, data=data, samples=len(report.preds), note=note,
                                    rounds=rounds, threads=threads, cost=model_cost(str(target)), limit=limit,
                                    reference=base))
    return result


def _source_file(run: Path, results: dict[str, Any], suffix: str) -> tuple[Path, str]:
    """The run's file that ``suffix`` asks for, checked against the sha256 the run recorded."""
    if suffix not in SHIPPABLE:
        raise HGCError(f"ship: -o must end in one of {', '.join(SHIPPABLE)} (got {suffix or 'no suffix'!r})")
    if suffix == ".pt":
        steps = results.get("steps") or []
        if not steps:
            raise HGCError(f"ship: {run}: the run has no steps; its model is the base {results.get('base')} itself")
        last = steps[-1]
        path, want, note = run / last["dir"] / "model.pt", last.get("output_sha256"), f"step {last['dir']}"
    else:
        artifact = results.get("artifact") or {}
        path = run / str(artifact.get("path", ""))
        if path.suffix != suffix:
            raise HGCError(f"ship: {run}: its artifact is {artifact.get('path')!r}, not a {suffix} file "
                           f"(use -o NAME{path.suffix}" + (", or .pt for the checkpoint)" if results.get("steps")
                                                           else ")"))
        want, note = artifact.get("sha256"), "the run's evaluated artifact"
    if not path.is_file():
        raise HGCError(f"ship: {path}: missing (the run directory is incomplete)")
    if want and sha256_file(path) != want:
        raise HGCError(f"ship: {path}: changed since the run recorded it (sha256 differs): rerun the recipe")
    return path, note


def _time_beside_base(shipped: str, base: str, rounds: int, threads: int) -> list[dict[str, Any]]:
    """Per CPU runtime: the base's fp32 ONNX and the shipped file (or its ONNX export) round-robin, paired."""
    with tempfile.TemporaryDirectory(prefix="hgc-ship-") as scratch:
        base_onnx = str(Path(scratch) / "base.onnx")
        export_onnx(base, base_onnx, parity_images=1)
        suffix, timed = Path(shipped).suffix, shipped
        if suffix in (".pt", PACKED_SUFFIX):  # a checkpoint or .hgz deploys as its ONNX export
            timed = str(Path(scratch) / "shipped.onnx")
            export_onnx(shipped, timed, parity_images=1)
        runtimes = [] if suffix == IR_SUFFIX else ["onnxruntime"]
        if openvino_available():
            runtimes.append("openvino")
        if not runtimes:
            return []
        jobs = [(path, runtime, None) for runtime in runtimes for path in (base_onnx, timed)]
        frame = bench_side_by_side(jobs, batch=1, runs=rounds, threads=threads)
        base_bytes = Path(base_onnx).stat().st_size
    rows = []
    for i, runtime in enumerate(runtimes):
        ref, this = frame.iloc[2 * i], frame.iloc[2 * i + 1]
        rows.append({"runtime": runtime, "base_ms": float(ref.p50_ms), "ms": float(this.p50_ms),
                     "speedup": paired_ratio(ref.ms, this.ms), "base_bytes": base_bytes,
                     "executed": this.executed if isinstance(this.executed, str) else None})
    return rows


def card_text(result: ShipResult, results: dict[str, Any], run: Path, *, data: str, samples: int, note: str,
              rounds: int, threads: int, cost: dict[str, Any], limit: int | None, reference: str | None = None) -> str:
    """The card's markdown: origin, steps, file, accuracy and speed, each with the command that reproduces it.

    ``reference``: the checkpoint the sizes and speeds compare with (default: the run's base).
    """
    reference = reference or str(results["base"])
    against = "the base" if reference == str(results["base"]) else f"`{reference}`"
    name = Path(result.path).name
    recipe = results.get("recipe") or {}
    sets = "".join(f" --set {k}={json.dumps(v, separators=(',', ':'))}" for k, v in
                   (results.get("overrides") or {}).items())
    machine = machine_info()
    lines = [f"# {Path(result.path).stem}", "", f"{recipe.get('description') or results['name']}.", "",
             "## How it was made", "",
             f"`hgc run {results.get('recipe_file')} --checkpoint {results['base']}{sets}` "
             f"(base sha256 `{str(results.get('base_sha256'))[:12]}…`, code {results.get('code_version')}), "
             f"then `hgc ship {run} -o {result.path}"
             f"{'' if reference == str(results['base']) else f' --reference {reference}'}` copied {note} here and "
             f"wrote this card.", "",
             "| step | op | seconds | parameters |", "|---|---|---|---|"]
    for step in results.get("steps") or []:
        params = json.dumps(step.get("params", {}), separators=(", ", ": "))
        lines.append(f"| {step['dir']} | {step['op']} | {float(step.get('seconds') or 0):,.0f} | `{params}` |")
    if not results.get("steps"):
        lines.append("| — | (none: the base exported) | | |")
    lines += _history_lines(results.get("lineage") or [])
    lines += ["", "## File", "",
              f"`{name}`{' + its `.bin`' if name.endswith(IR_SUFFIX) else ''}: {result.bytes:,} bytes, "
              f"sha256 `{result.sha256}`; {_count(cost.get('params'))} parameters, "
              f"{_count(cost.get('macs'), 1e6, 1)} MMACs at batch 1; precision "
              f"{results.get('precision') or 'fp32'}"
              + (f"; {result.speed[0]['base_bytes'] / result.bytes:.2f}× smaller than {against}'s fp32 ONNX export "
                 f"({result.speed[0]['base_bytes']:,} bytes)" if result.speed else "") + ".", "",
              "## Accuracy", "",
              f"PCKh@0.5 **{result.pckh:.2f}**, PCKh@0.1 {result.pckh01:.2f} on {samples:,} `{data}` samples "
              f"(no flip), evaluated from this file by `hgc ship`; reproduce with `hgc eval {result.path} --data "
              f"{data}{f' --limit {limit}' if limit else ''}`."]
    if result.run_pckh is not None:
        lines.append(f"The run scored {float(result.run_pckh):.2f} on its own evaluation "
                     f"({(results.get('evaluate') or {}).get('samples', '?')} samples).")
    if result.speed:
        lines += ["", "## Speed", "",
                  f"Side by side with {against}'s fp32 ONNX export in one process: {rounds} rounds, {threads} "
                  f"thread(s), batch 1; ×faster is the median over rounds of base time / this time.", "",
                  "| runtime | base p50 ms | this p50 ms | ×faster paired | executed |", "|---|---|---|---|---|"]
        for row in result.speed:
            lines.append(f"| {row['runtime']} | {row['base_ms']:.2f} | {row['ms']:.2f} | {row['speedup']:.2f}× | "
                         f"{row['executed'] or results.get('precision') or 'fp32'} |")
        isa = machine.get("isa") or ""
        lines += ["", f"Machine: {machine.get('cpu')} ({isa}), {deciding_features(isa)}"
                  f"; torch {machine.get('torch')}, onnxruntime {machine.get('onnxruntime')}"
                  f"{', openvino ' + str(machine.get('openvino')) if machine.get('openvino') else ''}.", "",
                  f"Re-time: `hgc export {reference} -o base.onnx` then `hgc bench base.onnx {result.path} "
                  f"--pair --threads {threads} --batch 1 --runs {rounds}`."]
    numbers = {"file": name, "sha256": result.sha256, "bytes": result.bytes, "data": data, "samples": samples,
               "limit": limit, "Mean": round(result.pckh, 6), "Mean@0.1": round(result.pckh01, 6),
               "speed": [{k: v for k, v in row.items() if k != "base_bytes"} for row in result.speed]}
    lines += ["", "Machine-readable (what `tests/models/` checks against the file):", "", "```json",
              json.dumps(numbers), "```"]
    return "\n".join(lines) + "\n"


def _history_lines(lineage: list[dict[str, Any]]) -> list[str]:
    """The model's whole history from its lineage, oldest first: a run that starts from another run's checkpoint
    (a longer schedule split into sittings) shows every stage, not only its own steps."""
    ops = [entry for entry in lineage if entry.get("op") != "export"]
    if not ops:
        return []
    lines = ["", "Its whole history, from the file's lineage (oldest first, the base's own training included):", "",
             "| # | op | parameters |", "|---|---|---|"]
    for i, entry in enumerate(ops):
        params = json.dumps(entry.get("params", {}), separators=(", ", ": "), sort_keys=True)
        lines.append(f"| {i} | {entry.get('op')} | `{params}` |")
    return lines


def _count(value: Any, unit: float = 1.0, digits: int = 0) -> str:
    """A count for the card, or "?" where the file type does not tell (NaN, missing)."""
    try:
        number = float(value) / unit
    except (TypeError, ValueError):
        return "?"
    return "?" if number != number else f"{number:,.{digits}f}"
