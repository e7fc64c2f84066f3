"""The ``prune`` recipe op and ``prune_checkpoint`` (``hgc prune``): structured pruning that really shrinks.

Iteration t of N prunes the model to ``schedule_fraction(t)`` of the target (channels, MACs, or a
latency cut resolved to MACs by timing exports) and fine-tunes it, distilled from the unpruned teacher
by default; with ``slimming`` an L1-penalised phase comes first. Everything that can be refused (exclude
patterns, tracing, a target out of reach, ``round_to``) is checked on the unpruned model before any
training. The result is a real smaller network: it passes a forward pass and an ONNX export with parity
before the op returns it, and ``checkpoint.save`` records its widths. Resumable per phase.
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from compress.export import export_onnx
from compress.io import check_output
from compress.measure.cost import count_macs, count_params
from compress.nets import checkpoint
from compress.steps import StepContext, StepResult, register_step
from compress.techniques.prune.config import PruneParams
from compress.techniques.prune.graph import PruneGraph, check_patterns
from compress.techniques.prune.importance import slimming_loss, slimming_norms, taylor_gradients
from compress.techniques.prune.latency import latency_removed, resolve_latency
from compress.techniques.prune.plan import Plan, original_widths, plan_channels, plan_macs
from compress.train import train


@dataclasses.dataclass
class Target:
    """What the iterations aim at once a latency target is resolved: ``channels`` or ``macs`` share."""

    kind: str
    value: float
    original: dict[str, int]
    macs_original: int
    latency: list[dict[str, float]] = dataclasses.field(default_factory=list)

    def plan(self, model: nn.Module, params: PruneParams, fraction: float = 1.0) -> Plan:
        """The plan reaching ``fraction`` of the target on ``model`` (ratios refer to the unpruned widths)."""
        make = plan_channels if self.kind == "channels" else plan_macs
        return make(model, params, self.value * fraction, self.original, self.macs_original)


def resolve_target(model: nn.Module, params: PruneParams, data: str, reference: str | None = None,
                   log: Any = None, resolved: dict[str, Any] | None = None) -> tuple[Target, Plan]:
    """Check the request on the unpruned model and return the target with its final one-shot plan.

    Raises one ``HGCError`` for an exclude pattern matching nothing, an untraceable network, nothing to
    prune, ``round_to`` emptying every layer, or a target out of reach — before any work. A latency
    target exports the unpruned model to ``reference`` (a temporary file when None) and times candidates.
    ``taylor`` ranks by the gradients ``model`` holds (``taylor_gradients``). ``resolved``
    (``{"kind", "value"}`` from an interrupted run) replaces the latency search.
    """
    check_patterns(model, params.exclude, "prune")
    graph = PruneGraph(model, params.heads, params.exclude)
    target = Target("macs" if params.target == "macs" else "channels", params.ratio, original_widths(graph),
                    count_macs(model, model.config.input_size))
    if resolved:
        target.kind, target.value = resolved["kind"], float(resolved["value"])
    elif params.target == "latency":
        search = resolve_latency(model, params, data, reference, target.original, target.macs_original, log)
        target.kind, target.value, target.latency = "macs", search.macs_ratio, search.tries
    return target, target.plan(model, params)


def _phase(model: nn.Module, params: PruneParams, ctx: StepContext, phase: int, seed_phase: int, steps: int,
           teacher: Any, extra: Any) -> dict[str, Any]:
    """One fine-tuning phase, resumable from its own scratch checkpoint."""
    ft = params.finetune
    assert ft is not None  # callers check
    cfg = dataclasses.replace(ft.train_config(ctx.device), steps=steps, seed=ft.seed + seed_phase)
    work = ctx.scratch(f"phase{phase}.pt")
    ctx.scratch(f"phase{phase}.pt.state")
    resume = (ctx.resume and work.is_file() and work.with_name(work.name + ".state").is_file()
              and checkpoint.read_payload(work)["config"] == model.config.to_dict())
    result = train(model, ctx.data, cfg, str(work), resume=resume, teacher=teacher, extra_loss=extra,
                   meta=ctx.meta, lineage=ctx.lineage, progress=ctx.progress)
    for record in result.history:
        ctx.log({"event": "finetune", "phase": phase, **record})
    last = result.history[-1] if result.history else {}
    return {"phase": phase, "steps": steps, "final_loss": last.get("loss"), "resumed": resume}


@register_step("prune", PruneParams)
def prune(model: Any, params: PruneParams, ctx: StepContext) -> StepResult:
    """Remove whole channels (torch-pruning DependencyGraph) in N iterations, fine-tuning between them."""
    reference = str(ctx.scratch("reference.onnx")) if params.target == "latency" else None
    if params.importance == "taylor":
        taylor_gradients(model, ctx.data, params.taylor_images, params.finetune.batch_size if params.finetune else 16, 0)
    unpruned, state, done, history = model, ctx.scratch("prune-state.pt"), 0, []
    saved = checkpoint.read_payload(state)["meta"] if ctx.resume and state.is_file() else None
    target, final = resolve_target(model, params, ctx.data, reference, ctx.log,
                                   saved["prune_target"] if saved else None)
    ctx.log({"event": "target", "kind": target.kind, "value": target.value, **final.summary()})
    params_original, ft = count_params(model), params.finetune
    teacher = ctx.teacher() if ft is not None and ft.distill is not None else None
    norms = slimming_norms(PruneGraph(model, params.heads, params.exclude)) if params.slimming else []
    if saved:
        model, _ = checkpoint.load(state)
        done, history = int(saved["prune_phases"]), list(saved["prune_history"])
        ctx.log({"event": "resumed", "phases_done": done})
    keep = {"kind": target.kind, "value": target.value}
    offset = 1 if params.slimming else 0
    for phase in range(params.iterations + offset):  # a resumed step also deletes the phases done before it
        ctx.scratch(f"phase{phase}.pt")
        ctx.scratch(f"phase{phase}.pt.state")
    if params.slimming and done == 0:
        penalty = slimming_loss(model, norms, params.slimming.l1)
        history.append({"slimming": _phase(model, params, ctx, 0, params.iterations, params.slimming.steps,
                                           teacher, penalty)})
        done = _save_state(model, state, 1, history, keep)
    for t in range(1, params.iterations + 1):
        if t - 1 + offset < done:
            continue
        if params.importance == "taylor":
            taylor_gradients(model, ctx.data, params.taylor_images, ft.batch_size if ft else 16, t)
        plan = target.plan(model, params, params.schedule_fraction(t))
        model = plan.model
        model.config = checkpoint.recorded_config(model, "prune")
        record: dict[str, Any] = {"iteration": t, "fraction": round(params.schedule_fraction(t), 4), **plan.summary()}
        ctx.log({"event": "prune", **record})
        if ft is not None:
            extra = slimming_loss(model, norms, params.slimming.l1) if params.slimming and t < params.iterations \
                else None
            record["finetune"] = _phase(model, params, ctx, t - 1 + offset, t - 1, ft.steps, teacher, extra)
        history.append(record)
        done = _save_state(model, state, t + offset, history, keep)
    if reference and not Path(reference).is_file():  # a resumed run whose search was done before
        export_onnx(unpruned, reference, parity_images=1, data=ctx.data)
    return StepResult(model, metrics=_final_metrics(model, params, ctx, target, history, params_original, reference))


def _save_state(model: nn.Module, path: Path, phases: int, history: list[dict[str, Any]],
                target: dict[str, Any]) -> int:
    """The model after ``phases`` finished phases, what they did and the resolved target: where a resume starts."""
    checkpoint.save(model, path, meta={"prune_phases": phases, "prune_history": history, "prune_target": target})
    return phases


def _final_metrics(model: nn.Module, params: PruneParams, ctx: StepContext, target: Target,
                   history: list[dict[str, Any]], params_original: int, reference: str | None) -> dict[str, Any]:
    """Export with parity (the proof the pruned network is sound), sizes and, for latency, the measured cut."""
    exported = export_onnx(model, ctx.scratch("pruned.onnx"), parity_images=2, data=ctx.data)
    last = next((h for h in reversed(history) if "iteration" in h), {})
    metrics = {"target": params.target, "ratio": params.ratio, "importance": params.importance, "scope": params.scope,
               "round_to": params.round_to, "resolved": {"kind": target.kind, "value": round(target.value, 4)},
               "channels_removed": last.get("channels_removed"), "macs_original": target.macs_original,
               "macs_removed": round(1.0 - count_macs(model, model.config.input_size) / target.macs_original, 4),
               "params_original": params_original, "onnx_bytes": exported.bytes,
               "parity_max_abs_diff": exported.max_abs_diff, "kept_whole": last.get("kept_whole"),
               "iterations": history}
    if reference:
        metrics["latency_search"] = target.latency
        metrics["latency_removed"] = round(latency_removed(reference, exported.path, params), 4)
    return metrics


def prune_checkpoint(model_path: str, out: str | None = None, *, data: str = "synthetic", **settings: Any) -> Plan:
    """One-shot structured pruning of a checkpoint (``hgc prune``): the plan and, with ``out``, the pruned file.

    ``settings`` are ``prune`` op parameters (ratio, target, importance, scope, round_to, …); nothing is
    fine-tuned. The pruned model passes a forward pass and an ONNX export with parity before ``out`` is
    written (with its lineage), so a file that appears is a sound smaller network.
    """
    params = PruneParams.build({**settings, "iterations": 1, "finetune": None}, "hgc prune")
    if out is not None:
        check_output(out)
    model, info = checkpoint.load(model_path)
    if params.importance == "taylor":
        taylor_gradients(model, data, params.taylor_images, 16, 0)
    _, plan = resolve_target(model, params, data)
    if out is not None:
        with tempfile.TemporaryDirectory(prefix="hgc-prune-") as tmp:
            export_onnx(plan.model, Path(tmp) / "check.onnx", parity_images=2, data=data)
        meta = {k: v for k, v in info.meta.items() if k in ("dataset", "input_size")}
        lineage = [*info.lineage, {"op": "prune", "params": params.to_dict(), "one_shot": True,
                                   "parent_sha256": info.sha256}]
        checkpoint.save(plan.model, out, meta={**meta, "pruned": plan.summary()}, lineage=lineage)
    return plan

