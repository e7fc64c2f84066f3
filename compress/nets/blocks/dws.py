"""Depthwise-separable bottleneck: the Newell bottleneck with its 3×3 split into depthwise + pointwise.

Why: the 3×3 (mid×mid×9 weights) holds ~70 % of a bottleneck's parameters; a depthwise 3×3 followed by
a 1×1 (MobileNet's factorisation) keeps the receptive field at about a ninth of that cost.
Layout: norm → ReLU → 1×1 (mid) → norm → ReLU → depthwise 3×3 → 1×1 (mid) → norm → ReLU → 1×1 (out),
plus the 1×1 skip projection when the channel count changes. Only plain convs and norms, so
``widths.py`` and torch-pruning can resize every layer (the depthwise conv follows its input width).
"""
from __future__ import annotations

import torch
from torch import nn

from compress.nets.blocks.preact import PreActBottleneck, inner_width
from compress.nets.blocks.registry import register_block


class SeparableConv2d(nn.Module):
    """Depthwise k×k (one filter per channel, optionally dilated) then pointwise 1×1 ``cin`` → ``cout``."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, dilation: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, kernel, padding=dilation * (kernel // 2), dilation=dilation,
                                   groups=cin, bias=True)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class DWSBottleneck(PreActBottleneck):
    """Pre-activation bottleneck whose 3×3 is depthwise-separable."""

    def __init__(self, cin: int, cout: int, norm: str = "batch", mid: int | None = None) -> None:
        mid = inner_width(cout, mid)
        super().__init__(cin, cout, norm, mid, lambda width: SeparableConv2d(width, width), "conv2")


@register_block("dws")
def dws(cin: int, cout: int, norm: str, mid: int | None = None) -> nn.Module:
    """Registry factory for ``block: dws`` (``block_args: {mid: N}`` sets the inner width, default out/2)."""
    return DWSBottleneck(cin, cout, norm, mid)
