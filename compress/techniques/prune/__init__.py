"""Structured channel pruning through torch-pruning's DependencyGraph (the ``prune`` op, ``hgc prune``).

Modules: ``config`` (``PruneParams``, the op's one configuration), ``graph`` (the channel groups and which
may shrink), ``importance`` (magnitude, BatchNorm scale, Taylor; network slimming's penalty), ``plan``
(keep counts, rounding, the pruned copy and its per-layer rows), ``latency`` (a latency target resolved
by timing exports) and ``op`` (the iterative recipe op and one-shot ``prune_checkpoint``).
"""
from compress.techniques.prune.config import PruneParams, SlimmingParams
from compress.techniques.prune.graph import ChannelGroup, PruneGraph
from compress.techniques.prune.op import prune, prune_checkpoint, resolve_target
from compress.techniques.prune.plan import Plan, PlanRow, format_plan, plan_channels, plan_macs

__all__ = ["ChannelGroup", "Plan", "PlanRow", "PruneGraph", "PruneParams", "SlimmingParams", "format_plan",
           "plan_channels", "plan_macs", "prune", "prune_checkpoint", "resolve_target"]
