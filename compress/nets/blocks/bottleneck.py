"""The pre-activation bottleneck residual of Newell et al. (the default hourglass block).

norm → ReLU → 1×1 (out/2) → norm → ReLU → 3×3 → norm → ReLU → 1×1 (out), plus a 1×1 projection
on the skip path when the channel count changes — the layout of pytorch-pose's ``Bottleneck``.
"""
from __future__ import annotations

import torch
from torch import nn

from compress.nets.blocks.registry import register_block
from compress.nets.layers import make_norm


class Bottleneck(nn.Module):
    """Pre-activation bottleneck: the residual unit of the stacked hourglass paper (Fig. 4 left)."""

    def __init__(self, cin: int, cout: int, norm: str = "batch", mid: int | None = None) -> None:
        super().__init__()
        mid = mid or cout // 2
        self.bn1 = make_norm(norm, cin)
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=True)
        self.bn2 = make_norm(norm, mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, bias=True)
        self.bn3 = make_norm(norm, mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.skip = nn.Conv2d(cin, cout, 1, bias=True) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + (self.skip(x) if self.skip is not None else x)


@register_block("bottleneck")
def bottleneck(cin: int, cout: int, norm: str, mid: int | None = None) -> nn.Module:
    """Registry factory for ``block: bottleneck`` (``block_args: {mid: N}`` sets the inner width)."""
    return Bottleneck(cin, cout, norm, mid)
