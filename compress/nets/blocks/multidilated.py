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
from compress.nets.blocks.registry import register_block
from compress.nets.layers import make_norm

DEFAULT_DILATIONS = (1, 2, 3)


class MultiDilated(nn.Module):
    """Pre-activation bottleneck whose 3×3 is a sum of dilated depthwise-separable branches."""

    def __init__(self, cin: int, cout: int, norm: str = "batch", dilations: Sequence[int] = DEFAULT_DILATIONS,
                 mid: int | None = None) -> None:
        super().__init__()
        mid = mid or max(cout // 2, 1)
        self.bn1 = make_norm(norm, cin)
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=True)
        self.bn2 = make_norm(norm, mid)
        self.branches = nn.ModuleList(SeparableConv2d(mid, mid, 3, d) for d in dilations)
        self.bn3 = make_norm(norm, mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.skip = nn.Conv2d(cin, cout, 1, bias=True) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.relu(self.bn2(out))
        fused = self.branches[0](out)
        for branch in self.branches[1:]:
            fused = fused + branch(out)
        out = self.conv3(self.relu(self.bn3(fused)))
        return out + (self.skip(x) if self.skip is not None else x)


@register_block("multidilated")
def multidilated(cin: int, cout: int, norm: str, dilations: Sequence[int] = DEFAULT_DILATIONS,
                 mid: int | None = None) -> nn.Module:
    """Registry factory for ``block: multidilated`` (``block_args: {dilations: [...], mid: N}``)."""
    if (not isinstance(dilations, (list, tuple)) or not dilations
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dilations)):
        raise HGCError(f"config.block_args for 'multidilated': dilations must be a non-empty list of "
                       f"positive integers, got {dilations!r}")
    return MultiDilated(cin, cout, norm, tuple(dilations), mid)
