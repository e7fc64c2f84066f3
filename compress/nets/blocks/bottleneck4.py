"""Four-layer bottleneck: the Newell bottleneck with a second norm → ReLU → 3×3 in the middle.

Why: seed 001 trains "4 blocks in each bottleneck": one more 3×3 at the inner width deepens every
residual module (larger receptive field, more capacity) at +mid²·9 weights per block.
Layout: norm → ReLU → 1×1 (mid) → norm → ReLU → 3×3 → norm → ReLU → 3×3 → norm → ReLU → 1×1 (out),
plus the 1×1 skip projection when the channel count changes.
"""
from __future__ import annotations

import torch
from torch import nn

from compress.nets.blocks.registry import register_block
from compress.nets.layers import make_norm, zero_convs


class Bottleneck4(nn.Module):
    """Pre-activation bottleneck with two 3×3 layers between its 1×1s."""

    def __init__(self, cin: int, cout: int, norm: str = "batch", mid: int | None = None) -> None:
        super().__init__()
        mid = mid or max(cout // 2, 1)
        self.bn1 = make_norm(norm, cin)
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=True)
        self.bn2 = make_norm(norm, mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, bias=True)
        self.bn3 = make_norm(norm, mid)
        self.conv3 = nn.Conv2d(mid, mid, 3, padding=1, bias=True)
        self.bn4 = make_norm(norm, mid)
        self.conv4 = nn.Conv2d(mid, cout, 1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.skip = nn.Conv2d(cin, cout, 1, bias=True) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        out = self.conv4(self.relu(self.bn4(out)))
        return out + (self.skip(x) if self.skip is not None else x)

    def zero_init_last(self) -> None:
        """Zero the residual branch's last conv: the block starts as its skip path (identity if cin == cout)."""
        zero_convs(self.conv4)


@register_block("bottleneck4")
def bottleneck4(cin: int, cout: int, norm: str, mid: int | None = None) -> nn.Module:
    """Registry factory for ``block: bottleneck4`` (``block_args: {mid: N}`` sets the inner width)."""
    return Bottleneck4(cin, cout, norm, mid)
