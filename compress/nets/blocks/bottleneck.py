"""The pre-activation bottleneck residual of Newell et al. (the default hourglass block).

norm → ReLU → 1×1 (out/2) → norm → ReLU → 3×3 → norm → ReLU → 1×1 (out), plus a 1×1 projection
on the skip path when the channel count changes — the layout of pytorch-pose's ``Bottleneck``.
"""
from __future__ import annotations

from torch import nn

from compress.nets.blocks.preact import PreActBottleneck, inner_width
from compress.nets.blocks.registry import register_block


class Bottleneck(PreActBottleneck):
    """Pre-activation bottleneck: the residual unit of the stacked hourglass paper (Fig. 4 left)."""

    def __init__(self, cin: int, cout: int, norm: str = "batch", mid: int | None = None) -> None:
        mid = inner_width(cout, mid)
        super().__init__(cin, cout, norm, mid, lambda width: nn.Conv2d(width, width, 3, padding=1, bias=True),
                         "conv2")


@register_block("bottleneck")
def bottleneck(cin: int, cout: int, norm: str, mid: int | None = None) -> nn.Module:
    """Registry factory for ``block: bottleneck`` (``block_args: {mid: N}`` sets the inner width)."""
    return Bottleneck(cin, cout, norm, mid)
