"""A structured-pruning plan: which channels each group keeps, applied to a copy, with per-layer rows.

``plan_channels`` ranks the channels of every group that may shrink (``importance``), keeps
``1 - ratio`` of each (``scope: local``) or of all of them (``global``, at most ``max_ratio`` from any
one group), rounds kept counts to multiples of ``round_to`` and removes the rest from a deep copy of
the model. ``plan_macs`` searches the channel ratio that removes a share of the MACs. A ``Plan`` holds
the pruned copy (already through a forward pass) and one row per convolution: channels and MACs
before/after — what ``hgc prune --plan`` prints before anything is applied.
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from compress.errors import HGCError
from compress.measure.cost import count_params, layer_macs
from compress.nets.layers import group_count
from compress.techniques.prune.config import PruneParams
from compress.techniques.prune.graph import ROOTS, ChannelGroup, PruneGraph, run_checked
from compress.techniques.prune.importance import copy_grads, describe, group_scores

SEARCH_STEPS = 12  # bisection steps of the MACs search (channel ratio resolved to ~0.02 %)


@dataclass
class PlanRow:
    """One convolution: channels and MACs before/after the plan, and why it is unchanged if it is."""

    layer: str
    out_before: int
    out_after: int
    in_before: int
    in_after: int
    macs_before: int
    macs_after: int
    note: str = ""


@dataclass
class Plan:
    """The pruned copy of the model, its rows and totals (``macs_removed`` is against the unpruned model)."""

    model: nn.Module
    rows: list[PlanRow]
    channel_ratio: float
    channels_before: int
    channels_after: int
    channels_original: int
    macs_original: int
    params_before: int
    params_after: int
    kept_whole: dict[str, int] = field(default_factory=dict)
    groups_pruned: int = 0
    groups: int = 0

    @property
    def macs_before(self) -> int:
        return sum(r.macs_before for r in self.rows)

    @property
    def macs_after(self) -> int:
        return sum(r.macs_after for r in self.rows)

    @property
    def macs_removed(self) -> float:
        """Share of the unpruned model's MACs this plan's result no longer does."""
        return 1.0 - self.macs_after / self.macs_original

    @property
    def channels_removed(self) -> float:
        """Share of the prunable groups' original channels that are gone."""
        return 1.0 - self.channels_after / max(self.channels_original, 1)

    def summary(self) -> dict[str, Any]:
        """Totals for logs and metrics."""
        return {"channel_ratio": round(self.channel_ratio, 4), "channels_removed": round(self.channels_removed, 4),
                "macs_original": self.macs_original, "macs_before": self.macs_before, "macs_after": self.macs_after,
                "macs_removed": round(self.macs_removed, 4), "params_before": self.params_before,
                "params_after": self.params_after, "groups": self.groups, "groups_pruned": self.groups_pruned,
                "kept_whole": self.kept_whole}

    def row_dicts(self) -> list[dict[str, Any]]:
        """The rows as plain dictionaries."""
        return [asdict(r) for r in self.rows]


def original_widths(graph: PruneGraph) -> dict[str, int]:
    """Out-layer name → channels of its group, for every group (the widths iterative ratios refer to)."""
    return {name: g.width for g in graph.groups for name in g.out_layers()}


def _original(group: ChannelGroup, original: dict[str, int]) -> int:
    return next((original[n] for n in group.out_layers() if n in original), group.width)


def _rounded(keep: float, width: int, floor: float, round_to: int) -> int:
    """``keep`` to the nearest multiple of ``round_to`` (not below ``floor``, not zero, at most ``width``)."""
    kept = round_to * math.floor(keep / round_to + 0.5)
    if kept < floor:
        kept = round_to * math.ceil(floor / round_to)
    return min(max(kept, round_to), width)


def _global_counts(groups: list[ChannelGroup], scores: dict[str, torch.Tensor], ratio: float,
                   floors: dict[str, int], originals: dict[str, int]) -> dict[str, int]:
    """Channels each group keeps when the lowest-ranked ``ratio`` of all original channels go (floors held)."""
    target = (1.0 - ratio) * sum(originals.values())
    values = torch.cat([scores[g.name] for g in groups]).sort(descending=True).values

    def kept(tau: float) -> dict[str, int]:
        return {g.name: min(g.width, max(floors[g.name], int((scores[g.name] >= tau).sum()))) for g in groups}

    lo, hi = 0, len(values) - 1  # kept(values[i]) shrinks as i falls; find the smallest i still ≥ target
    while lo < hi:
        mid = (lo + hi) // 2
        if sum(kept(float(values[mid])).values()) >= target:
            hi = mid
        else:
            lo = mid + 1
    return kept(float(values[lo]))


def keep_counts(groups: list[ChannelGroup], scores: dict[str, torch.Tensor], params: PruneParams, ratio: float,
                original: dict[str, int]) -> dict[str, int]:
    """Channels each prunable group keeps at channel ratio ``ratio`` (rounded; narrow groups marked kept)."""
    rounding = params.round_to
    candidates = [g for g in groups if not g.blocked and g.name in scores]
    for g in candidates:
        if _original(g, original) <= rounding and rounding > 1:
            g.keep("round_to", f"{_original(g, original)} channels, not more than round_to {rounding}")
    live = [g for g in candidates if not g.blocked]
    if not live:
        narrow = [g for g in candidates if g.blocked]
        if narrow:
            widest = max(narrow, key=lambda g: g.width)
            raise HGCError(f"round_to: {rounding} would leave every prunable layer with no channels (the widest, "
                           f"{widest.name}, has {widest.width}); lower round_to")
        example = next((g for g in groups if g.blocked), None)
        raise HGCError("nothing to prune: every channel group is kept whole ("
                       + ", ".join(f"{n} {kind}" for kind, n in describe(groups).items())
                       + (f"; e.g. {example.name}: {example.blocked})" if example else ")"))
    originals = {g.name: _original(g, original) for g in live}
    floors = {name: math.ceil(orig * (1.0 - params.max_ratio)) for name, orig in originals.items()}
    if params.scope == "global":
        counts = _global_counts(live, scores, ratio, floors, originals)
    else:
        share = min(ratio, params.max_ratio)
        counts = {g.name: originals[g.name] * (1.0 - share) for g in live}
    return {g.name: _rounded(counts[g.name], g.width, floors[g.name], rounding) for g in live}


def _norm_specs(model: nn.Module) -> dict[str, tuple[int, int]]:
    return {n: (m.num_channels, m.num_groups) for n, m in model.named_modules() if isinstance(m, nn.GroupNorm)}


def _regroup(model: nn.Module, before: dict[str, tuple[int, int]]) -> None:
    """GroupNorms that lost channels keep their channels per group where they can (else the most groups ≤ before)."""
    for name, (channels, groups) in before.items():
        norm = model.get_submodule(name)
        if norm.num_channels != channels:
            per = channels // groups
            norm.num_groups = norm.num_channels // per if norm.num_channels % per == 0 else \
                group_count(norm.num_channels, groups)


def _rows(before: nn.Module, after: nn.Module, macs_before: dict[str, int], macs_after: dict[str, int],
          notes: dict[str, str]) -> list[PlanRow]:
    rows = []
    layers = dict(after.named_modules())
    for name, module in before.named_modules():
        if isinstance(module, ROOTS):
            new = layers[name]
            changed = (new.out_channels, new.in_channels) != (module.out_channels, module.in_channels)
            rows.append(PlanRow(name, module.out_channels, new.out_channels, module.in_channels, new.in_channels,
                                macs_before.get(name, 0), macs_after.get(name, 0), "" if changed else notes.get(name, "")))
    return rows


def plan_channels(model: nn.Module, params: PruneParams, ratio: float, original: dict[str, int] | None = None,
                  macs_original: int | None = None) -> Plan:
    """Prune a deep copy of ``model`` at channel ratio ``ratio`` (of the ``original`` widths) and describe it.

    ``original`` maps layers to their unpruned group widths (default: the model's own); gradients held
    by ``model`` (``taylor``) are copied along. The copy passes a forward pass before it is returned.
    """
    work = copy.deepcopy(model)
    copy_grads(model, work)
    graph = PruneGraph(work, params.heads, params.exclude)
    original = original or original_widths(graph)
    scores = group_scores(graph, params.importance, params.p)
    counts = keep_counts(graph.groups, scores, params, ratio, original)
    size = model.config.input_size
    before_macs, norms = layer_macs(model, size), _norm_specs(work)
    notes = {name: g.blocked or "already at its planned width" for g in graph.groups for name in g.out_layers()}
    pruned = 0
    for group in graph.groups:
        keep = counts.get(group.name, group.width)
        if keep < group.width:
            order = torch.argsort(scores[group.name], stable=True)
            graph.prune(group, order[: group.width - keep].tolist())
            pruned += 1
    _regroup(work, norms)
    work.zero_grad(set_to_none=True)
    _check_output(model, work, torch.zeros(1, 3, size, size))
    live = [g for g in graph.groups if g.name in counts]
    return Plan(model=work, rows=_rows(model, work, before_macs, layer_macs(work, size), notes), channel_ratio=ratio,
                channels_before=sum(g.width for g in live), channels_after=sum(counts[g.name] for g in live),
                channels_original=sum(_original(g, original) for g in live),
                macs_original=macs_original or sum(before_macs.values()), params_before=count_params(model),
                params_after=count_params(work), kept_whole=describe(graph.groups), groups_pruned=pruned,
                groups=len(graph.groups))


def _check_output(model: nn.Module, work: nn.Module, image: torch.Tensor) -> None:
    """The pruned copy runs and gives heatmaps of the unpruned model's shape."""
    modes = model.training, work.training
    with torch.no_grad():
        want = model.eval()(image).shape
        got = run_checked(work.eval(), image, "the pruned network").shape
    model.train(modes[0])
    work.train(modes[1])
    if got != want:
        raise HGCError(f"the pruned network gives heatmaps of shape {tuple(got)}, not {tuple(want)}")


def plan_macs(model: nn.Module, params: PruneParams, macs_ratio: float, original: dict[str, int] | None = None,
              macs_original: int | None = None) -> Plan:
    """The plan with the smallest channel ratio that removes ``macs_ratio`` of the (original) MACs.

    An unreachable share (with this max_ratio, round_to, heads and exclude) is one error before any work.
    """
    unchanged = plan_channels(model, params, 0.0, original, macs_original)
    if unchanged.macs_removed >= macs_ratio:  # earlier iterations already removed enough
        return unchanged
    top = params.max_ratio if params.scope == "local" else 0.99
    best = plan_channels(model, params, top, original, macs_original)
    if best.macs_removed < macs_ratio:
        raise HGCError(f"ratio: removing {macs_ratio:.1%} of the MACs is out of reach: at most "
                       f"{best.macs_removed:.1%} can go with max_ratio {params.max_ratio}, round_to {params.round_to}, "
                       f"heads {params.heads} ({sum(best.kept_whole.values())} channel groups kept whole)")
    lo, hi = 0.0, top
    for _ in range(SEARCH_STEPS):
        mid = (lo + hi) / 2
        candidate = plan_channels(model, params, mid, original, macs_original)
        if candidate.macs_removed >= macs_ratio:
            hi, best = mid, candidate
        else:
            lo = mid
    return best


def format_plan(plan: Plan, every_row: bool = False) -> str:
    """The plan as a table: changed layers (all with ``every_row``), then the totals."""
    header = f"{'layer':<52} {'out':>11} {'in':>11} {'MACs':>21}  note"
    lines = [header, "-" * len(header)]
    for r in plan.rows:
        if every_row or (r.out_before, r.in_before) != (r.out_after, r.in_after):
            lines.append(f"{r.layer:<52} {r.out_before:>5}→{r.out_after:<5} {r.in_before:>5}→{r.in_after:<5} "
                         f"{r.macs_before:>10,}→{r.macs_after:<10,} {r.note}")
    s = plan.summary()
    lines.append("-" * len(header))
    lines.append(f"channels: {plan.channels_before} → {plan.channels_after} of the prunable groups "
                 f"({plan.channels_removed:.1%} of their original {plan.channels_original} removed; "
                 f"{s['groups_pruned']} of {s['groups']} groups pruned)")
    lines.append(f"MACs: {plan.macs_before:,} → {plan.macs_after:,} ({plan.macs_removed:.1%} of "
                 f"{plan.macs_original:,} removed); params: {plan.params_before:,} → {plan.params_after:,}")
    if s["kept_whole"]:
        lines.append("kept whole (groups by reason): " + ", ".join(f"{kind} {n}" for kind, n in s["kept_whole"].items()))
    return "\n".join(lines)
