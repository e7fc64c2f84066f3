"""The ``pack`` recipe op: write the model as a packed ``model.hgz`` artifact (``compress.packed``).

Codebook layers (after ``cluster``) are stored as indices + codebook, sparse layers (after ``sparsify``)
with relative-index positions, hashed layers (after ``hash``) as buckets + seed, the rest in the float
block; symbol streams are entropy-coded by ``coder``. By default BatchNorm statistics are folded and every
float is rounded to float16 first (``compress.packed.compact``), so the step returns the rounded model. The
runner evaluates the artifact through its unpacked network and reports its bytes on disk; onnxruntime
latency is that of the unpacked fp32 ONNX.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compress.packed import CODER_CHOICES, DEFAULT_CODER, DEFAULT_FLOATS, FLOATS, compare_coders, pack_model
from compress.steps import Params, StepContext, StepResult, choice, option, register_step

ARTIFACT = "model.hgz"


@dataclass
class PackParams(Params):
    """How the packed artifact codes its symbol streams."""

    coder: str = choice(DEFAULT_CODER, CODER_CHOICES, "entropy coder of indices and positions (best: smallest per stream)")
    floats: str = choice(DEFAULT_FLOATS, FLOATS, "fp16: every float stored as float16 (the artifact holds the rounded "
                         "model, which is what gets evaluated); exact: stored bit for bit as trained")
    fold_norms: bool = option(True, "fold BatchNorm statistics into scale and shift (same function, half the values)")
    compare_coders: bool = option(False, "also code the model with every coder and record each one's bytes "
                                  "and seconds in the metrics (the size report shows them)")


@register_step("pack", PackParams, artifact=True)
def pack(model: Any, params: PackParams, ctx: StepContext) -> StepResult:
    """Write the model as a packed .hgz artifact (codebooks, sparse positions, hashed buckets, entropy coding)."""
    report = pack_model(model, ctx.step_dir / ARTIFACT, meta=ctx.meta, lineage=ctx.lineage, coder=params.coder,
                        floats=params.floats, fold_norms=params.fold_norms)
    ctx.log({"event": "packed", **report.to_dict(), "layers": report.layers})
    metrics = report.to_dict()
    if params.compare_coders:  # the model is coded once more per coder: off by default
        metrics["coders"] = compare_coders(model, ctx.lineage)
    return StepResult(model, artifact=ARTIFACT, metrics=metrics)
