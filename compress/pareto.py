"""Pareto fronts: the runs no other run beats on every objective at once.

A point dominates another when it is at least as good on every objective and strictly better on one.
Points with a missing (None/NaN) objective are never on the front and dominate nothing.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence


def _value(point: Mapping[str, Any], key: str) -> float:
    value = point.get(key)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value


def _objectives(point: Mapping[str, Any], maximize: Sequence[str], minimize: Sequence[str]) -> list[float] | None:
    """Objective vector to maximize (minimized keys negated), or None when one is missing."""
    values = [_value(point, k) for k in maximize] + [-_value(point, k) for k in minimize]
    return None if any(math.isnan(v) for v in values) else values


def dominates(a: Mapping[str, Any], b: Mapping[str, Any], maximize: Sequence[str] = (),
              minimize: Sequence[str] = ()) -> bool:
    """True if ``a`` is no worse than ``b`` on every objective and strictly better on at least one.

    The definition the front and its property tests share.
    """
    va, vb = _objectives(a, maximize, minimize), _objectives(b, maximize, minimize)
    return _beats(va, vb)


def _beats(va: list[float] | None, vb: list[float] | None) -> bool:
    if va is None or vb is None:
        return False
    return all(x >= y for x, y in zip(va, vb)) and any(x > y for x, y in zip(va, vb))


def pareto_front(points: Sequence[Mapping[str, Any]] | Any, maximize: Sequence[str] | str = (),
                 minimize: Sequence[str] | str = ()) -> list[bool]:
    """For each point (mapping or DataFrame row), whether it is on the pareto front.

    ``maximize``/``minimize`` name the objective keys (e.g. ``maximize="pckh_mean", minimize="bytes"``);
    equal points are all on the front (neither dominates the other).
    """
    if hasattr(points, "to_dict"):  # a pandas DataFrame
        points = points.to_dict("records")
    maximize = [maximize] if isinstance(maximize, str) else list(maximize)
    minimize = [minimize] if isinstance(minimize, str) else list(minimize)
    if not maximize and not minimize:
        raise ValueError("pareto_front: name at least one objective to maximize or minimize")
    vectors = [_objectives(p, maximize, minimize) for p in points]
    return [vi is not None and not any(_beats(vj, vi) for vj in vectors) for vi in vectors]
