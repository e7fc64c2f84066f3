"""Sensitivity-guided mixed precision: which nodes to keep fp32 so int8 loses at most ``max_drop``.

Candidates are the conv layers, the BatchNorms run as int8 convs and the residual Adds (``STREAM_OPS``):
an Add kept fp32 keeps the residual stream exact while the convs reading it stay int8.

Ranking: each candidate is quantized *alone* in an otherwise fp32 graph and scored by the heatmap MSE
against the fp32 graph on labelled crops (PCKh drop recorded beside it). The alternative — exclude each
layer alone from a full int8 graph — costs the same (one quantizer pass and one scoring run per layer,
both reusing the single calibration pass), but measures a small change of an already-noisy result and
needs many more scoring images to rank reliably; quantizing alone isolates each layer's own error, so it
is the cheaper of the two at equal ranking quality.

Selection: starting from the full int8 graph, the k most sensitive layers stay fp32 for k = 1, 2, 4, …
until the PCKh drop on the scoring crops is ≤ ``max_drop``; the smallest passing k between the last two
tries is then found by bisection. Every try is recorded. The scoring crops come from the training source
after the calibration positions, never from the split the final evaluation scores.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from compress.data.crops import Crops
from compress.progress import progress_bar
from compress.runtime import OrtPredictor
from compress.techniques.quantize.calibration import Calibration

Log = Callable[[dict[str, Any]], None] | None


@dataclass
class LayerSensitivity:
    """One candidate node quantized alone: heatmap MSE and PCKh drop against fp32 on the scoring crops."""

    node: str
    layer: str
    heatmap_mse: float
    pckh_drop: float


@dataclass
class Selection:
    """The layers kept fp32 to meet ``max_drop``, the resulting drop, and every try on the way."""

    max_drop: float
    full_int8_drop: float
    drop: float
    met: bool
    fp32_layers: list[LayerSensitivity] = field(default_factory=list)
    ranking: list[LayerSensitivity] = field(default_factory=list)
    tries: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (ranking included, most sensitive first)."""
        return {"max_drop": self.max_drop, "full_int8_drop": round(self.full_int8_drop, 4),
                "drop": round(self.drop, 4), "met": self.met, "kept_fp32": len(self.fp32_layers),
                "method": "each candidate (conv, BatchNorm conv, residual Add) quantized alone, ranked by heatmap "
                          "MSE; greedy k = 1, 2, 4, … then bisection",
                "tries": self.tries, "ranking": [asdict(r) for r in self.ranking]}

    def excluded_rows(self) -> list[dict[str, Any]]:
        """One ``QuantReport.excluded`` row per layer kept fp32, with the drop it caused alone."""
        return [{"node": r.node, "layer": r.layer,
                 "reason": f"sensitivity: alone it cost {r.pckh_drop:+.2f} PCKh, heatmap MSE {r.heatmap_mse:.3g}"}
                for r in self.fp32_layers]


def _score(cal: Calibration, crops: Crops, reference: np.ndarray, threads: int, **quantize: Any
           ) -> tuple[float, float]:
    """(heatmap MSE vs ``reference``, PCKh) of one quantized variant of ``cal``'s model."""
    path = str(cal.dir / "variant.onnx")
    cal.quantize(path, **quantize)
    out = OrtPredictor(path, threads=threads)(crops.images)
    os.unlink(path)
    return float(np.mean((out - reference) ** 2)), crops.pckh(out)


def rank_layers(cal: Calibration, layers: list[tuple[str, str]], crops: Crops, reference: np.ndarray, *,
                skip: set[str] | frozenset[str] = frozenset(), threads: int = 1,
                log: Log = None, progress: bool = False) -> list[LayerSensitivity]:
    """Quantize each candidate ``(node, label)`` alone and rank them, most damaging first (module docstring).

    With ``progress`` a bar (a line every 10 % off a terminal) counts the candidates: on hg2-128 the
    search scores ~180 of them and runs for minutes.
    """
    base = crops.pckh(reference)
    ranking = []
    todo = [(node, layer) for node, layer in layers if node not in skip]
    bar = progress_bar(len(todo), enabled=progress, desc="sensitivity", unit="node")
    for node, layer in todo:
        mse, pckh = _score(cal, crops, reference, threads, nodes_to_quantize=[node])
        bar.update(1)
        ranking.append(LayerSensitivity(node, layer, mse, base - pckh))
        if log:
            log({"event": "sensitivity", "layer": layer, "node": node, "heatmap_mse": mse, "pckh_drop": base - pckh})
    bar.close()
    return sorted(ranking, key=lambda r: (-r.heatmap_mse, -r.pckh_drop))


def select_fp32(cal: Calibration, ranking: list[LayerSensitivity], crops: Crops, reference: np.ndarray,
                max_drop: float, *, forced: list[str] | tuple[str, ...] = (), threads: int = 1,
                log: Log = None) -> Selection:
    """Keep the fewest top-ranked layers fp32 whose exclusion brings the PCKh drop within ``max_drop``."""
    base = crops.pckh(reference)
    drops: dict[int, float] = {}

    def drop_with(k: int) -> float:
        if k not in drops:
            excluded = [*forced, *(r.node for r in ranking[:k])]
            mse, pckh = _score(cal, crops, reference, threads, nodes_to_exclude=excluded)
            drops[k] = base - pckh
            if log:
                log({"event": "mixed-precision try", "fp32_layers": k, "pckh_drop": drops[k], "heatmap_mse": mse})
        return drops[k]

    low, high = 0, 0
    if drop_with(0) > max_drop and ranking:
        high = 1
        while high < len(ranking) and drop_with(high) > max_drop:
            low, high = high, min(2 * high, len(ranking))
        if drop_with(high) <= max_drop:
            while high - low > 1:  # invariant: drop(low) > max_drop >= drop(high)
                middle = (low + high) // 2
                low, high = (low, middle) if drop_with(middle) <= max_drop else (middle, high)
    tries = [{"fp32_layers": k, "pckh_drop": round(d, 4)} for k, d in sorted(drops.items())]
    return Selection(max_drop=max_drop, full_int8_drop=drops[0], drop=drops[high], met=drops[high] <= max_drop,
                     fp32_layers=ranking[:high], ranking=ranking, tries=tries)
