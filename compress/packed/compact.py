"""Make a model's float values cheap to store before it is packed: fold BatchNorm statistics, round to float16.

After clustering, the float block (BatchNorm parameters and statistics, biases, unclustered heads) is what
stops a packed hourglass from getting much smaller: on ``hg2-128`` with 16 values per conv it was 152 KB of
a 775 KB payload, 30× its share of the weights. Two changes shrink it without retraining:

* **fold** — an inference-mode BatchNorm computes ``(x − mean) / sqrt(var + eps) · w + b``, an affine map
  per channel. Storing its scale and shift as ``w`` and ``b`` with ``mean = 0`` and ``var = 1`` (``w`` is
  multiplied by ``sqrt(1 + eps)`` so the eps still in the formula cancels) keeps the function to float
  rounding, and the statistics become constants the block's LZMA stores in a few bytes;
* **fp16** — every float value is rounded to the nearest float16. The float block stores a tensor whose
  values are exact float16 in two bytes (``floats.precision``). Rounding is odd-symmetric and maps equal
  values to equal values, so codebook layers keep ≤ k values, sparse zeros stay zero and hashed layers keep
  their ``±bucket`` structure. A tensor with a value beyond float16's range stays float32.

Measured on ``hg2-128`` with every conv but the heads clustered to 16 values (one shot, no tuning), packed
with ``hgc pack CKPT --floats exact --no-fold-norms`` and with ``hgc pack CKPT``, each ``.hgz`` scored by
``hgc eval … --limit 500``: 775,937 → 675,297 bytes (the float block 152 → 52 KB), PCKh@0.5 83.55 both.

Both change the model: the packed file holds the changed one, and the runner scores the unpacked file, so
the accuracy reported is that of what is stored. ``compact_floats`` changes the model in place.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

FLOATS = ("fp16", "exact")
FP16_MAX = float(torch.finfo(torch.float16).max)


@dataclass
class CompactReport:
    """What ``compact_floats`` changed: norms folded, tensors rounded, the largest change of a value
    relative to the largest value of its tensor."""

    floats: str
    norms_folded: int = 0
    tensors_rounded: int = 0
    kept_fp32: list[str] = field(default_factory=list)
    max_relative_change: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"floats": self.floats, "norms_folded": self.norms_folded, "tensors_rounded": self.tensors_rounded,
                "kept_fp32": self.kept_fp32, "max_relative_change": self.max_relative_change}


def fold_norm(norm: nn.BatchNorm2d) -> bool:
    """Rewrite one BatchNorm's statistics into its affine parameters (mean 0, var 1); False if it cannot."""
    if not (norm.affine and norm.track_running_stats and norm.running_mean is not None):
        return False
    with torch.no_grad():
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        shift = norm.bias - norm.running_mean * scale
        norm.weight.copy_(scale * math.sqrt(1.0 + norm.eps))
        norm.bias.copy_(shift)
        norm.running_mean.zero_()
        norm.running_var.fill_(1.0)
    return True


def _round_fp16(name: str, tensor: torch.Tensor, report: CompactReport) -> None:
    if not tensor.numel():
        return
    with torch.no_grad():
        peak = tensor.abs().max().item()
        if peak > FP16_MAX:
            report.kept_fp32.append(name)
            return
        rounded = tensor.to(torch.float16).to(torch.float32) + 0.0  # + 0.0: no negative zeros
        if peak > 0:
            change = (rounded - tensor).abs().max().item() / peak
            report.max_relative_change = max(report.max_relative_change, change)
        tensor.copy_(rounded)
        report.tensors_rounded += 1


def compact_floats(model: nn.Module, floats: str = "fp16", fold_norms: bool = True) -> CompactReport:
    """Fold BatchNorm statistics (``fold_norms``) and round every float tensor to float16 (``floats='fp16'``).

    ``floats='exact'`` with ``fold_norms=False`` changes nothing. In place; returns what changed.
    """
    if floats not in FLOATS:
        raise ValueError(f"floats {floats!r}: expected one of {', '.join(FLOATS)}")
    report = CompactReport(floats=floats)
    if fold_norms:
        report.norms_folded = sum(fold_norm(m) for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    if floats == "fp16":
        for name, tensor in model.state_dict(keep_vars=True).items():
            if tensor.is_floating_point():
                _round_fp16(name, tensor.data, report)
    return report
