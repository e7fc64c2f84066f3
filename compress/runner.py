"""Run a recipe: each step in its own directory, skipped when its inputs are unchanged, resumable when killed.

``runs/<name>/<NN>-<op>/`` holds ``model.pt`` (lineage appended), ``log.jsonl``, ``metrics.json`` and,
once its outputs exist, ``done.json`` with the input hash (parent sha256 + op + params + code version).
``final/`` holds the exported artifact, evaluated as exported and measured; ``results.json`` is the row.
"""
from __future__ import annotations

import datetime
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnxruntime
import torch
import yaml

from compress.errors import HGCError
from compress.evaluate import evaluate
from compress.export import export_onnx
from compress.io import sha256_file, write_text
from compress.measure.bench import bench_models, model_cost
from compress.measure.cost import count_macs, count_params
from compress.measure.machine import deciding_features, machine_info
from compress.measure.sizes import file_sizes
from compress.nets import checkpoint as ckpt
from compress.packed.files import unpack_file
from compress.packed.format import SUFFIX as PACKED_SUFFIX
from compress.packed.model import load_model
from compress.packed.stages import float_values
from compress.recipe import RUNTIMES, Recipe, check_inputs, runtime_engine
from compress.rundir import (
    RunLock,
    clear_step,
    finished_step,
    input_hash,
    read_json,
    remove_stale_steps,
    reuse_sibling,
    write_json,
)
from compress.runtime import describe_predictor, load_predictor, resolve_providers
from compress.runtime_openvino import IR_SUFFIX, import_openvino
from compress.steps import Budget, StepContext, StepResult, get_op

UNPACKED_ONNX = "model.unpacked.onnx"  # in final/: the fp32 ONNX of a packed artifact, what runtimes time
RESULTS_FORMAT = "hgc-results/1"
Echo = Callable[[str], None]


@dataclass
class StepOutcome:
    """What happened to one step (or the final stage): ``ran``, ``resumed`` or ``skipped``."""

    index: int
    op: str
    dir: str
    status: str
    seconds: float
    summary: str = ""


@dataclass
class RunResult:
    """The run directory, per-step outcomes and the results row that was written."""

    name: str
    dir: str
    steps: list[StepOutcome] = field(default_factory=list)
    results_path: str = ""
    results: dict[str, Any] = field(default_factory=dict)


def preflight(recipe: Recipe, checkpoint_path: str | None, device: str) -> tuple[str, str | None]:
    """Everything that can fail before a file is written: inputs exist and load, devices and runtimes exist.

    Returns (base checkpoint, teacher checkpoint or None); bad input never leaves a half-made run directory.
    """
    base, teacher = check_inputs(recipe, checkpoint_path)
    ckpt.load(base)
    if teacher:
        ckpt.load(teacher)
    if not (device == "cpu" or re.fullmatch(r"cuda(:\d+)?", device)):
        raise HGCError(f"--device {device!r}: expected cpu, cuda or cuda:N")
    wants = ([f"--device {device}"] if device.startswith("cuda") else []) + \
        [f"measure.runtimes {r}" for r in recipe.measure.runtimes if RUNTIMES[r][1] == "cuda"]
    if wants and not torch.cuda.is_available():
        raise HGCError(f"{recipe.source or 'recipe'}: {', '.join(wants)} needs CUDA, which this machine does not have")
    for name in recipe.measure.runtimes:
        kind, dev, provider, _ = RUNTIMES[name]
        if runtime_engine(name) == "openvino":
            import_openvino()  # not installed: one line naming the extra
        elif kind == "onnx":
            resolve_providers(provider, dev)
    return base, teacher


def run_recipe(recipe: Recipe, checkpoint: str | None = None, out: str = "runs", device: str = "cpu",
               quick: bool = False, progress: bool = True, echo: Echo | None = None) -> RunResult:
    """Run ``recipe`` from its base (or ``checkpoint``) into ``out/<name>/`` and write ``results.json``.

    Unchanged steps are skipped, an interrupted step resumes from its last checkpoint; ``quick`` runs the
    smoke-test ``Budget`` (1 % of the training steps, few crops, 32 evaluation samples, 3 timed runs).
    """
    say = echo or (lambda _line: None)
    base, teacher_path = preflight(recipe, checkpoint, device)
    run_dir = Path(out) / recipe.name
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise HGCError(f"--out {out}: cannot create the run directory {run_dir} (a path on the way is a file)"
                       ) from None
    result = RunResult(name=recipe.name, dir=str(run_dir))
    with RunLock(run_dir):
        write_text(run_dir / "recipe.yaml", yaml.safe_dump(recipe.to_dict(), sort_keys=False))
        names = [f"{i:02d}-{s.op}" for i, s in enumerate(recipe.steps)]
        remove_stale_steps(run_dir, set(names))
        teacher_file = teacher_path or base
        shared = {"code_version": ckpt.code_version(), "quick": quick, "data": recipe.train_data(),
                  "teacher_sha256": sha256_file(teacher_file)}
        teacher_cache: list[Any] = []

        def load_teacher() -> Any:
            if not teacher_cache:
                teacher_cache.append(ckpt.load(teacher_file)[0])
            return teacher_cache[0]

        parent, parent_sha, records = base, sha256_file(base), []
        for index, (step, name) in enumerate(zip(recipe.steps, names)):
            inputs = {"parent_sha256": parent_sha, "op": step.op, "params": step.params.to_dict(), **shared}
            outcome, done = _run_step(index, step, run_dir / name, inputs, parent, recipe, device, quick,
                                      progress, load_teacher)
            result.steps.append(outcome)
            say(f"{name}: {outcome.summary}")
            parent, parent_sha = str(run_dir / name / "model.pt"), done["output_sha256"]
            records.append({"index": index, "op": step.op, "dir": name, "params": step.params.to_dict(),
                            "input_hash": done["input_hash"], "output_sha256": parent_sha,
                            "artifact": done.get("artifact"), "seconds": done.get("seconds"),
                            "metrics": read_json(run_dir / name / "metrics.json") or {}})
        artifact = str(run_dir / records[-1]["dir"] / records[-1]["artifact"]) \
            if records and records[-1]["artifact"] else None
        outcome, results = _finish(recipe, run_dir, parent, parent_sha, artifact, records, base, device, quick)
        result.steps.append(outcome)
        say(f"final: {outcome.summary}")
        result.results_path, result.results = str(run_dir / "results.json"), results
    return result


def _run_step(index: int, step: Any, step_dir: Path, inputs: dict[str, Any], parent: str, recipe: Recipe,
              device: str, quick: bool, progress: bool, load_teacher: Callable[[], Any]
              ) -> tuple[StepOutcome, dict[str, Any]]:
    """Skip, resume or run one step; returns its outcome and its ``done.json`` record."""
    digest = input_hash(inputs)
    done = finished_step(step_dir, digest, step_dir / "model.pt")
    if done:
        return StepOutcome(index, step.op, str(step_dir), "skipped", 0.0, "skipped (unchanged)"), done
    reused = reuse_sibling(step_dir, digest)
    if reused:
        donor, done = reused
        return StepOutcome(index, step.op, str(step_dir), "reused", 0.0,
                           f"reused from {donor} (identical inputs: same parent, op, parameters, code)"), done
    attempt = read_json(step_dir / "attempt.json")
    resume = bool(attempt and attempt.get("input_hash") == digest)
    if not resume:
        clear_step(step_dir)
    (step_dir / "done.json").unlink(missing_ok=True)
    write_json(step_dir / "attempt.json", {"input_hash": digest, "inputs": inputs, "started": _now()})
    started = time.perf_counter()
    model, info = ckpt.load(parent)
    budget = Budget(quick=quick)
    used = budget.apply(step.params)  # what the op really runs with: recorded, not the declared values
    lineage = [*info.lineage, {"op": step.op, "params": used.to_dict(), "quick": quick,
                               "parent_sha256": inputs["parent_sha256"]}]
    meta = {k: v for k, v in info.meta.items() if k in ("dataset", "input_size")}
    meta.update(recipe=recipe.name, recipe_step=index)
    ctx = StepContext(step_dir=step_dir, data=recipe.train_data(), device=device, budget=budget, resume=resume,
                      progress=progress, lineage=lineage, meta=meta, teacher_loader=load_teacher)
    if resume:
        ctx.log({"event": "resumed", "at": _now()})
    result = get_op(step.op, f"steps[{index}]").fn(model, used, ctx)
    artifact = _check_result(result, step.op, step_dir)
    seconds = time.perf_counter() - started
    ckpt.save(result.model, step_dir / "model.pt", meta=meta, lineage=lineage)
    size = result.model.config.input_size
    metrics = {"op": step.op, "seconds": round(seconds, 3), "resumed": resume, "params_used": used.to_dict(),
               "params": count_params(result.model), "macs": count_macs(result.model, size), **result.metrics}
    write_json(step_dir / "metrics.json", metrics)
    done = {"input_hash": digest, "inputs": inputs, "params_used": used.to_dict(),
            "output_sha256": sha256_file(step_dir / "model.pt"), "artifact": artifact,
            "artifact_sha256": sha256_file(step_dir / artifact) if artifact else None,
            "seconds": round(seconds, 3), "finished": _now()}
    write_json(step_dir / "done.json", done)
    for scratch in ctx.scratch_files:
        scratch.unlink(missing_ok=True)
    (step_dir / "attempt.json").unlink(missing_ok=True)
    loss = f", loss {metrics['final_loss']:.3e}" if isinstance(metrics.get("final_loss"), float) else ""
    status = "resumed" if resume else "ran"
    summary = f"{'resumed from its last checkpoint, ' if resume else ''}done in {seconds:.1f}s" \
              f" ({metrics['params']:,} params{loss})"
    return StepOutcome(index, step.op, str(step_dir), status, seconds, summary), done


def _check_result(result: Any, op: str, step_dir: Path) -> str | None:
    """The artifact's name inside ``step_dir`` after checking the op kept the step contract."""
    if not isinstance(result, StepResult):
        raise TypeError(f"op {op!r} returned {type(result).__name__}, not a StepResult")
    if result.artifact is None:
        return None
    path = Path(result.artifact)
    path = path if path.is_absolute() else step_dir / path
    if path.parent.resolve() != step_dir.resolve() or not path.is_file():
        raise TypeError(f"op {op!r}: artifact {result.artifact} is not a file in its step directory {step_dir}")
    return path.name


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _final_inputs(recipe: Recipe, model_sha: str, artifact: str | None, records: list[dict[str, Any]],
                  device: str, quick: bool) -> dict[str, Any]:
    """What the final stage depends on; ``--quick`` caps evaluation samples and timed runs."""
    budget = Budget(quick=quick)
    evaluate, measure = budget.apply(recipe.evaluate).to_dict(), budget.apply(recipe.measure).to_dict()
    return {"name": recipe.name, "recipe": recipe.to_dict(), "model_sha256": model_sha,
            "artifact_sha256": sha256_file(artifact) if artifact else None,
            "steps": [r["input_hash"] for r in records], "evaluate": evaluate, "measure": measure,
            "eval_data": recipe.eval_data(), "device": device, "quick": quick,
            "code_version": ckpt.code_version()}


def _finish(recipe: Recipe, run_dir: Path, model_path: str, model_sha: str, artifact: str | None,
            records: list[dict[str, Any]], base: str, device: str, quick: bool) -> tuple[StepOutcome, dict[str, Any]]:
    """Export (unless the last step left an artifact), evaluate as exported, measure, write ``results.json``."""
    final, results_path = run_dir / "final", run_dir / "results.json"
    inputs = _final_inputs(recipe, model_sha, artifact, records, device, quick)
    digest = input_hash(inputs)
    if finished_step(final, digest, results_path, artifact_root=run_dir) and read_json(results_path):
        return StepOutcome(len(records), "final", str(final), "skipped", 0.0, "skipped (unchanged)"), \
            read_json(results_path) or {}
    clear_step(final)
    started = time.perf_counter()
    fp32_export = artifact is None
    if artifact is None:
        artifact = export_onnx(model_path, final / "model.onnx", dynamic_batch=True, data=recipe.eval_data()).path
    row = _evaluate_and_measure(artifact, model_path, inputs, device, final, fp32_export)
    results = {"format": RESULTS_FORMAT, "name": recipe.name, "recipe": recipe.to_dict(),
               "recipe_file": recipe.source, "overrides": recipe.overrides, "base": base,
               "base_sha256": sha256_file(base), "quick": quick, "device": device,
               "steps": records, "artifact": {"path": os.path.relpath(artifact, run_dir),
                                              "sha256": sha256_file(artifact)},
               **row, "code_version": ckpt.code_version(), "created": _now()}
    write_json(results_path, results)
    seconds = time.perf_counter() - started
    write_json(final / "done.json", {"input_hash": digest, "inputs": inputs, "finished": _now(),
                                     "output_sha256": sha256_file(results_path),
                                     "artifact": os.path.relpath(artifact, run_dir),
                                     "artifact_sha256": sha256_file(artifact), "seconds": round(seconds, 3)})
    return StepOutcome(len(records), "final", str(final), "ran", seconds, _final_summary(results, run_dir)), results


def _evaluate_and_measure(artifact: str, model_path: str, inputs: dict[str, Any], device: str, final: Path,
                          fp32_export: bool) -> dict[str, Any]:
    """PCKh of the artifact as exported (``final/eval.json``), its cost and bytes, and latency per runtime.

    Torch runtimes time the checkpoint, so they are timed only when the artifact is that checkpoint's fp32
    export (``fp32_export``); otherwise they are skipped and ``skipped_runtimes`` says why.
    """
    ev, ms = inputs["evaluate"], inputs["measure"]
    cost, sizes = model_cost(artifact), file_sizes(artifact)
    bf16 = cost["precision"] == "bf16"  # made for OpenVINO: onnxruntime cannot run it
    predictor = load_predictor(artifact, device=_eval_device(artifact, device), runtime="openvino" if bf16 else None)
    report = evaluate(predictor, inputs["eval_data"], limit=ev["limit"], flip=ev["flip"], batch_size=ev["batch_size"])
    pckh = report.result.to_dict()
    write_json(final / "eval.json", {"data": inputs["eval_data"], "samples": len(report.indices),
                                                     **ev, **pckh})
    primary = _accuracy(predictor, report)
    latency, notes, machine, skipped, by_runtime = [], [], machine_info(), {}, {}
    for name in ms["runtimes"]:
        kind, dev, provider, compiled = RUNTIMES[name]
        engine = runtime_engine(name)
        if engine == "onnxruntime" and (bf16 or artifact.endswith(IR_SUFFIX)):
            what = "bf16" if bf16 else "an OpenVINO IR"
            skipped[name] = f"artifact {os.path.basename(artifact)} is {what}; onnxruntime cannot run it"
            continue
        if kind != "onnx" and not fp32_export:
            skipped[name] = (f"artifact is {cost['precision'] or 'a non-fp32'} "
                             f"{'ONNX' if artifact.endswith('.onnx') else 'file'} "
                             f"{os.path.basename(artifact)}; {name} would time the fp32 checkpoint")
            continue
        if kind == "onnx" and artifact.endswith(PACKED_SUFFIX):
            timed = _unpacked_onnx(artifact, final, notes, name)
        elif kind == "onnx" and not artifact.endswith((".onnx", IR_SUFFIX)):
            notes.append(f"{name}: not timed, the artifact {os.path.basename(artifact)} is not an ONNX file")
            continue
        else:
            timed = artifact if kind == "onnx" else model_path
        if engine == "openvino":  # scored as it runs: the same precision hint as the timing below
            by_runtime[name] = primary if predictor.runtime == "openvino" and timed == artifact else \
                _score_on(timed, engine, ms["threads"], inputs)
        bench = bench_models([timed], batches=ms["batch"], runs=ms["runs"], warmup=ms["warmup"],
                             threads=ms["threads"], device=dev, provider=provider if engine == "onnxruntime" else None,
                             compile=compiled, runtimes=[engine])
        machine = {**machine, **bench.machine}
        for row in bench.table.to_dict("records"):
            if engine == "openvino" and row["precision_hint"] != by_runtime[name]["precision_hint"]:
                raise HGCError(f"{name}: timed with precision hint {row['precision_hint']} but scored with "
                               f"{by_runtime[name]['precision_hint']}")
            latency.append({"runtime": name, "batch": int(row["batch"]), "timed": os.path.basename(timed),
                            **{k: row[k] for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "threads",
                                                    "provider", "runs", "warmup")},
                            **({k: row[k] for k in ("streams", "precision_hint", "executed")}
                               if engine == "openvino" else {})})
    machine["deciding"] = deciding_features(machine.get("isa") or "")
    return {"evaluate": {"data": inputs["eval_data"], "samples": len(report.indices),
                         **describe_predictor(predictor), "provider": predictor.provider, **ev},
            "accuracy_by_runtime": by_runtime,
            "pckh": pckh, "pckh_mean": pckh["Mean"], "pckh01_mean": pckh["Mean@0.1"], "auc": pckh["AUC"],
            "precision": cost["precision"], "params": cost["params"], "macs": cost["macs"],
            "bytes": sizes["bytes"], "gzip_bytes": sizes["gzip_bytes"], "lzma_bytes": sizes["lzma_bytes"],
            "latency": latency, "skipped_runtimes": skipped, "machine": machine,
            "lineage": cost.get("lineage", []), "notes": notes,
            "float_values": float_values(load_model(model_path)[0].state_dict()),  # W of the size breakdown
            **({"unpacked_onnx": file_sizes(_unpacked_path(artifact, final))}
               if artifact.endswith(PACKED_SUFFIX) else {})}


def _score_on(path: str, engine: str, threads: int | None, inputs: dict[str, Any]) -> dict[str, Any]:
    """PCKh of ``path`` as ``engine`` runs it (OpenVINO: its precision hint decides the numerics) and what ran."""
    ev = inputs["evaluate"]
    predictor = load_predictor(path, runtime=engine, threads=threads)
    report = evaluate(predictor, inputs["eval_data"], limit=ev["limit"], flip=ev["flip"], batch_size=ev["batch_size"])
    return _accuracy(predictor, report)


def _accuracy(predictor: Any, report: Any) -> dict[str, Any]:
    """An ``accuracy_by_runtime`` entry: the scores of one evaluation and what ran it."""
    pckh = report.result.to_dict()
    return {"pckh": pckh, "pckh_mean": pckh["Mean"], "pckh01_mean": pckh["Mean@0.1"], "auc": pckh["AUC"],
            "samples": len(report.indices), **describe_predictor(predictor)}


def _unpacked_onnx(artifact: str, final: Path, notes: list[str], runtime: str) -> str:
    """The fp32 ONNX of a packed artifact's unpacked network: what onnxruntime times for a ``.hgz``."""
    path = Path(_unpacked_path(artifact, final))
    notes.append(f"{runtime}: timed {path.name}, the fp32 ONNX export of the unpacked network "
                 f"(the .hgz is a storage format; its bytes are the artifact's)")
    return str(path)


def _unpacked_path(artifact: str, final: Path) -> str:
    """``final/model.unpacked.onnx``, the fp32 ONNX export of a packed artifact's network (made once per run).

    Timed by onnxruntime, and its raw/gzip/lzma bytes are the size report's comparison for the ``.hgz``.
    """
    path = final / UNPACKED_ONNX
    if not path.is_file():
        unpack_file(artifact, str(path))
    return str(path)


def _eval_device(artifact: str, device: str) -> str:
    """Where the artifact is scored: ``device``, except ONNX on CUDA without onnxruntime's CUDA provider → cpu.

    Accuracy does not depend on the execution provider, and a CPU-only onnxruntime must not fail a GPU run.
    """
    if device == "cpu" or not artifact.endswith(".onnx"):
        return device
    return device if "CUDAExecutionProvider" in onnxruntime.get_available_providers() else "cpu"


def _final_summary(results: dict[str, Any], run_dir: Path) -> str:
    parts = [f"{results['artifact']['path']} ({results['bytes'] / 1e6:.2f} MB, {results['precision']})",
             f"PCKh@0.5 {_num(results['pckh_mean'])} on {results['evaluate']['samples']} samples"]
    for row in results["latency"][:1]:
        parts.append(f"{row['runtime']} b{row['batch']} p50 {row['p50_ms']:.2f} ms")
    return ", ".join(parts) + f" → {run_dir / 'results.json'}"


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.2f}"
