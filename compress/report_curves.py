"""Training curves in a report: validation PCKh against training steps, and how many steps a run needs.

Runs whose training steps recorded a validation curve (``val_every`` of ``distill``/``swap``: ``val_curve``
in the step's metrics) get one more plot, ``pckh_vs_steps``, and a table. Steps are counted over the whole
run: the training steps of earlier recipe steps and a swap's blockwise steps come before the curve's own
step numbers, so a blockwise-initialised run is charged for its blockwise phase.

The table answers the ablation question "how many steps does this save?": runs made from the same recipe
file with and without ``--set`` overrides (``hgc sweep … --set steps.0.swap.blockwise_steps=0``) are pairs,
and for each pair it gives the first step at which one run's curve reaches the other's final PCKh, as a
fraction of the other's total steps (≤ 0.5: it needed at most half the steps). Curve points are scored on
the step's ``val_samples`` images (a few hundred), so differences of a few tenths are within their noise.
"""
from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Callable
from typing import Any

import pandas as pd

Curve = list[tuple[int, float]]


def trained_steps(metrics: dict[str, Any]) -> int:
    """Optimizer steps one recipe step trained for, from its metrics (0 for a step that does not train).

    ``steps`` (finetune, distill, swap's end-to-end phase), ``blockwise_steps`` (swap), ``tune_steps``
    (cluster, hash), ``qat_steps`` (quantize) and, for prune, ``iterations`` × its ``finetune.steps``.
    """
    count = sum(_count(metrics.get(k)) for k in ("steps", "blockwise_steps", "tune_steps", "qat_steps"))
    used = metrics.get("params_used") or {}
    finetune = used.get("finetune") if metrics.get("op") == "prune" else None
    if isinstance(finetune, dict):
        count += _count(finetune.get("steps")) * max(1, _count(used.get("iterations")))
    return count


def lineage_steps(entry: dict[str, Any]) -> int:
    """Optimizer steps one lineage entry trained for, from the parameters it recorded (0 for one that does not).

    The lineage keeps an op's parameters, not its metrics: ``steps`` and ``blockwise_steps`` (finetune,
    distill, swap, sparsify), ``tune.steps`` (cluster, hash), ``qat.steps`` (quantize) and, for prune,
    ``iterations`` × its ``finetune.steps``.
    """
    params = entry.get("params") or {}
    count = _count(params.get("steps")) + _count(params.get("blockwise_steps"))
    for key in ("tune", "qat"):
        if isinstance(params.get(key), dict):
            count += _count(params[key].get("steps"))
    if entry.get("op") == "prune" and isinstance(params.get("finetune"), dict):
        count += _count(params["finetune"].get("steps")) * max(1, _count(params.get("iterations")))
    return count


def inherited(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The lineage entries that made a run's base from its root model: the ops the base already had.

    A run usually starts from a trained root (``hg2-128``), so nothing is inherited; a run that continues an
    earlier run's checkpoint (a second sitting of a split schedule) inherits that run's ops. They are the
    entries before the first whose parent is the run's base, less the root's own training (no parent) and
    exports, which do not change the network.
    """
    lineage, base = data.get("lineage") or [], data.get("base_sha256")
    own = next((i for i, e in enumerate(lineage) if base and e.get("parent_sha256") == base), None)
    if own is None:
        return []
    return [e for e in lineage[:own] if e.get("parent_sha256") is not None and e.get("op") != "export"]


def run_curve(steps: list[dict[str, Any]]) -> Curve:
    """[(step counted over the whole run, validation PCKh)] of every curve the run's steps recorded."""
    points: Curve = []
    done = 0
    for step in steps:
        metrics = step.get("metrics") or {}
        blockwise = _count(metrics.get("blockwise_steps"))
        points += [(done + blockwise + int(s), float(p)) for s, p in metrics.get("val_curve") or []]
        done += trained_steps(metrics)
    return points


def _count(value: Any) -> int:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0


def curve_column(steps: list[dict[str, Any]]) -> str | None:
    """The run's curve as JSON for the results table (None without a curve)."""
    curve = run_curve(steps)
    return json.dumps(curve) if curve else None


def _curve(row: dict[str, Any]) -> Curve:
    text = row.get("val_curve")
    return [(int(s), float(p)) for s, p in json.loads(text)] if isinstance(text, str) else []


def reach(curve: Curve, target: float) -> int | None:
    """The first step at which ``curve`` is at or above ``target`` (None if it never is)."""
    return next((step for step, pckh in curve if pckh >= target), None)


def _pair_row(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    a, b = _curve(first), _curve(second)
    (a_end, a_final), (b_end, b_final) = a[-1], b[-1]
    at = reach(a, b_final)
    return {"run": first["run"], "steps": a_end, "final": a_final, "vs": second["run"], "vs steps": b_end,
            "vs final": b_final, "reaches vs final at": at,
            "fraction of vs steps": at / b_end if at is not None and b_end else math.nan}


def _same_file(a: dict[str, Any], b: dict[str, Any]) -> bool:
    files = [r.get("recipe_file") for r in (a, b)]
    return all(isinstance(f, str) and f for f in files) and os.path.normpath(files[0]) == os.path.normpath(files[1])


def curve_pairs(raw: pd.DataFrame) -> pd.DataFrame:
    """Both directions of every (recipe as written, same recipe with overrides) pair of runs with curves.

    ``steps`` is a run's last curve point (``val_every`` always scores the end of training).
    """
    if "val_curve" not in raw:
        return pd.DataFrame()
    rows = [r for r in raw.to_dict("records") if isinstance(r.get("val_curve"), str)]
    out = []
    for plain in (r for r in rows if not r.get("overrides")):
        for varied in (r for r in rows if r.get("overrides") and _same_file(r, plain)):
            out += [_pair_row(plain, varied), _pair_row(varied, plain)]
    return pd.DataFrame(out)


def curves_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """Long table (run, step, pckh) of every run's curve, for the plot."""
    if "val_curve" not in raw:
        return pd.DataFrame(columns=["run", "step", "pckh"])
    points = [{"run": r["run"], "step": s, "pckh": p} for r in raw.to_dict("records") for s, p in _curve(r)]
    return pd.DataFrame(points, columns=["run", "step", "pckh"])


LEGEND = ("Steps count every training step of the run (a swap's blockwise steps included). `reaches vs final "
          "at`: the first curve point of `run` at or above the final curve PCKh of `vs`, and that step as a "
          "fraction of `vs`'s steps (≤ 0.5: `run` needed at most half the steps). Curve PCKh is scored on each "
          "step's `val_samples` validation images, not the full split of the runs table.")


def _shown(pairs: pd.DataFrame) -> pd.DataFrame:
    shown = pairs.copy()
    for col in ("final", "vs final"):
        shown[col] = [f"{v:.2f}" for v in shown[col]]
    shown["reaches vs final at"] = ["—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{int(v):,}"
                                    for v in shown["reaches vs final at"]]
    shown["fraction of vs steps"] = ["" if math.isnan(v) else f"{v:.2f}" for v in shown["fraction of vs steps"]]
    return shown


TITLE = "Training curves: steps to reach a sibling run's final PCKh"


def curves_section(pairs: pd.DataFrame, markdown: Callable[[pd.DataFrame], str]) -> list[str]:
    """Markdown lines of the pair table (nothing without a pair); ``markdown`` renders a DataFrame."""
    if pairs.empty:
        return []
    return [f"## {TITLE}", "", markdown(_shown(pairs)), "", LEGEND, ""]


def curves_html(pairs: pd.DataFrame) -> str:
    """The same section as HTML (empty without a pair)."""
    if pairs.empty:
        return ""
    return (f"<h2>{html.escape(TITLE)}</h2>" + _shown(pairs).to_html(index=False, escape=True, border=0)
            + f"<p>{html.escape(LEGEND).replace('`', '')}</p>")
