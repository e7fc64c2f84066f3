"""Hourglass residual unit (HRU, Chu et al. 2017): a bottleneck plus a pooled branch, all summed.

Why: the pooled branch sees the input at half resolution, so one unit gets a much larger receptive
field (context for occluded or far-apart joints) without another hourglass level.
Layout: out = skip(x) + bottleneck(x) + up(3×3(norm → ReLU → 3×3(maxpool₂(norm → ReLU → x)))), where the
bottleneck is the Newell pre-activation one (its own identity / 1×1 projection is the skip term), the
branch is norm → ReLU → 2×2 max-pool → 3×3 (mid) → norm → ReLU → 3×3 (out) → ×2 nearest upsample, and
``mid`` defaults to out/2. The branch pools with ``ceil_mode`` and crops after upsampling, so odd sides
(down to 1×1 at the innermost level) work; even sides need no crop. Heavier than the bottleneck: it is
an accuracy swap, not a compression one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from compress.nets.blocks.bottleneck import Bottleneck
from compress.nets.blocks.registry import register_block
from compress.nets.layers import make_norm, zero_convs


class HourglassResidualUnit(nn.Module):
    """Bottleneck (with its skip) + a max-pooled two-conv branch upsampled back to the input size."""

    def __init__(self, cin: int, cout: int, norm: str = "batch", mid: int | None = None) -> None:
        super().__init__()
        mid = mid or max(cout // 2, 1)
        self.bottleneck = Bottleneck(cin, cout, norm, mid)
        self.pool_bn1 = make_norm(norm, cin)
        self.pool_conv1 = nn.Conv2d(cin, mid, 3, padding=1, bias=True)
        self.pool_bn2 = make_norm(norm, mid)
        self.pool_conv2 = nn.Conv2d(mid, cout, 3, padding=1, bias=True)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = F.max_pool2d(self.relu(self.pool_bn1(x)), 2, ceil_mode=True)
        low = self.pool_conv2(self.relu(self.pool_bn2(self.pool_conv1(low))))
        up = F.interpolate(low, scale_factor=2.0, mode="nearest")
        height, width = x.shape[-2:]
        if up.shape[-2] != height or up.shape[-1] != width:
            up = up[..., :height, :width]
        return self.bottleneck(x) + up

    def zero_init_last(self) -> None:
        """Zero the last conv of both branches: the unit starts as its skip path (identity if cin == cout)."""
        self.bottleneck.zero_init_last()
        self._zero_pooled()

    def adopt(self, block: nn.Module) -> bool:
        """Start as ``block`` computes, if it is a bottleneck of this unit's shape: its weights become the
        unit's bottleneck and the pooled branch starts at zero (a swap then keeps the teacher's function).
        """
        if type(block) is not Bottleneck:
            return False
        mine, theirs = self.bottleneck.state_dict(), block.state_dict()
        if mine.keys() != theirs.keys() or any(mine[k].shape != theirs[k].shape for k in mine):
            return False
        self.bottleneck.load_state_dict(theirs)
        self._zero_pooled()
        return True

    def _zero_pooled(self) -> None:
        zero_convs(self.pool_conv2)


@register_block("hru")
def hru(cin: int, cout: int, norm: str, mid: int | None = None) -> nn.Module:
    """Registry factory for ``block: hru`` (``block_args: {mid: N}`` sets the inner/branch width)."""
    return HourglassResidualUnit(cin, cout, norm, mid)
