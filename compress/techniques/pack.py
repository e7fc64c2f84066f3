"""The ``pack`` recipe op: write the model as a packed ``model.hgz`` artifact (``compress.packed``).

Codebook layers (after ``cluster``) are stored as indices + codebook, sparse layers (after ``sparsify``)
with relative-index positions, hashed layers (after ``hash``) as buckets + seed, the rest as exact
float16/float32; symbol streams are entropy-coded by ``coder``. The runner evaluates the artifact through
its unpacked network and reports its bytes on disk; onnxruntime latency is that of the unpacked fp32 ONNX.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compress.packed import CODER_CHOICES, DEFAULT_CODER, pack_model
from compress.steps import Params, StepContext, StepResult, choice, register_step

ARTIFACT = "model.hgz"


@dataclass
class PackParams(Params):
    """How the packed artifact codes its symbol streams."""

    coder: str = choice(DEFAULT_CODER, CODER_CHOICES, "entropy coder of indices and positions (best: smallest per stream)")


@register_step("pack", PackParams, artifact=True)
def pack(model: Any, params: PackParams, ctx: StepContext) -> StepResult:
    """Write the model as a packed .hgz artifact (codebooks, sparse positions, hashed buckets, entropy coding)."""
    report = pack_model(model, ctx.step_dir / ARTIFACT, meta=ctx.meta, lineage=ctx.lineage, coder=params.coder)
    ctx.log({"event": "packed", **report.to_dict(), "layers": report.layers})
    return StepResult(model, artifact=ARTIFACT, metrics=report.to_dict())
