"""Multi-dilated light residual block: parallel dilated depthwise-separable 3×3s inside a bottleneck.

Why: Kim & Lee's "multidilated light residual block" (the seed's "Multi" variants) widens the receptive
field at several scales for the price of depthwise convolutions: each branch is a depthwise 3×3 at one
dilation plus a 1×1, and the branches are summed (a sum, not a concatenation + 1×1: same width out, no
extra fusion weights — this is what lands the seed's parameter counts).
Layout: norm → ReLU → 1×1 (mid) → norm → ReLU → Σ_d [depthwise 3×3 dilation d → 1×1] → norm → ReLU →
1×1 (out), plus the 1×1 skip projection when the channel count changes.
``block_args: {dilations: [1, 2, 3]}`` (default); the seed's "Multi5" is [1, 2, 3, 5], "Multi7" [1, 2, 3, 5, 7].
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from compress.errors import HGCError
from compress.nets.blocks.dws import SeparableConv2d
from compress.nets.blocks.preact import PreActBottleneck, inner_width
from compress.nets.blocks.registry import register_block

DEFAULT_DILATIONS = (1, 2, 3)


class BranchSum(nn.ModuleList):
    """Parallel branches over one input, summed (a list, so their keys stay ``branches.<i>.…``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = self[0](x)
        for branch in self[1:]:
            fused = fused + branch(x)
        return fused


class MultiDilated(PreActBottleneck):
    """Pre-activation bottleneck whose 3×3 is a sum of dilated depthwise-separable branches."""

    def __init__(self, cin: int, cout: int, norm: str = "batch", dilations: Sequence[int] = DEFAULT_DILATIONS,
                 mid: int | None = None) -> None:
        mid = inner_width(cout, mid)
        super().__init__(cin, cout, norm, mid,
                         lambda width: BranchSum(SeparableConv2d(width, width, 3, d) for d in dilations), "branches")


@register_block("multidilated")
def multidilated(cin: int, cout: int, norm: str, dilations: Sequence[int] = DEFAULT_DILATIONS,
                 mid: int | None = None) -> nn.Module:
    """Registry factory for ``block: multidilated`` (``block_args: {dilations: [...], mid: N}``)."""
    if (not isinstance(dilations, (list, tuple)) or not dilations
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dilations)):
        raise HGCError(f"config.block_args for 'multidilated': dilations must be a non-empty list of "
                       f"positive integers, got {dilations!r}")
    return MultiDilated(cin, cout, norm, tuple(dilations), mid)
