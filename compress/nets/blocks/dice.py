"""DiCE bottleneck: the 3×3 of the Newell bottleneck replaced by DiCE units (Mehta et al., DiCENet).

Why: a DiCE unit encodes spatial and channel context with dimension-wise convolutions, which cost a
few weights per channel/row/column, instead of a dense mid×mid×9 kernel (the seed's "Dice1"/"Dice2").
A unit is DimConv + DimFuse:
  * DimConv: three depthwise 3×3 convolutions run along each dimension of the C×H×W tensor: over the
    channels (an ordinary depthwise conv, one filter per channel), along the height (the tensor viewed
    as H×C×W, one filter per row) and along the width (viewed as W×H×C, one filter per column). Their
    outputs are interleaved channel by channel into 3C maps, then norm → ReLU.
  * DimFuse: a grouped 1×1 (C groups) fuses each channel's three views locally (→ C, norm, ReLU); a
    grouped 3×3 (gcd(C, out) groups) projects it spatially (norm, ReLU), and that projection is gated
    per channel by squeeze-style weights: global average pool → 1×1 (C/4) → ReLU → 1×1 (out) → sigmoid.
Block layout: norm → ReLU → 1×1 (mid) → norm → ReLU → DiCE × ``units`` → norm → ReLU → 1×1 (out), plus
the 1×1 skip projection when the channel count changes. ``block_args: {units: 1 | 2, mid: N}``.

Spatial size: the height- and width-wise convolutions have one filter per row/column, so they are built
for one side length. The network passes each block the side of the feature map it sees (``size``,
derived from ``config.input_size`` and the block's hourglass level), so a net rebuilt from its config
alone runs every level without resampling. When a map of another side arrives (the same weights run at
another input size, or a block built without ``size``: ``DEFAULT_SIZE``), that dimension is bilinearly
resampled to the built length before the conv and back afterwards. The length is read from the conv
itself (its channel count), never cached separately. Structured pruning must leave those two convs
alone: ``DiCEUnit.pruning_ignored()`` names them (collected by ``blocks.pruning_hints``).
Plain ReLU stands where EdgeNets uses PReLU, so every layer is one ``widths.py`` can resize.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from compress.errors import HGCError
from compress.nets.blocks.preact import PreActBottleneck, inner_width
from compress.nets.blocks.registry import register_block
from compress.nets.layers import make_norm

DEFAULT_SIZE = 16  # side used when the caller does not know the feature-map size


def _along(x: torch.Tensor, dim: int, conv: nn.Conv2d) -> torch.Tensor:
    """Apply ``conv`` with dimension ``dim`` (2: height, 3: width) of ``x`` in the channel position."""
    side, built = x.shape[dim], conv.in_channels
    if side != built:
        target = (built, x.shape[3]) if dim == 2 else (x.shape[2], built)
        x = F.interpolate(x, size=target, mode="bilinear", align_corners=False)
    out = conv(x.transpose(1, dim)).transpose(1, dim)
    if side != built:
        back = (side, out.shape[3]) if dim == 2 else (out.shape[2], side)
        out = F.interpolate(out, size=back, mode="bilinear", align_corners=False)
    return out


class DiCEUnit(nn.Module):
    """Dimension-wise convolutions (channel, height, width) + DimFuse: ``cin`` → ``cout``, same H×W."""

    def __init__(self, cin: int, cout: int, norm: str = "batch", size: int = DEFAULT_SIZE) -> None:
        super().__init__()
        self.channel_conv = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.height_conv = nn.Conv2d(size, size, 3, padding=1, groups=size, bias=False)
        self.width_conv = nn.Conv2d(size, size, 3, padding=1, groups=size, bias=False)
        self.dim_norm = make_norm(norm, 3 * cin)
        self.local_fuse = nn.Conv2d(3 * cin, cin, 1, groups=cin, bias=False)
        self.local_norm = make_norm(norm, cin)
        self.spatial = nn.Conv2d(cin, cout, 3, padding=1, groups=math.gcd(cin, cout), bias=False)
        self.spatial_norm = make_norm(norm, cout)
        squeezed = max(cin // 4, 1)
        self.squeeze = nn.Conv2d(cin, squeezed, 1, bias=False)
        self.excite = nn.Conv2d(squeezed, cout, 1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.relu = nn.ReLU(inplace=True)

    def pruning_ignored(self) -> list[nn.Module]:
        """The height/width-wise convs: their channels are rows/columns, not prunable features."""
        return [self.height_conv, self.width_conv]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        views = (self.channel_conv(x), _along(x, 2, self.height_conv), _along(x, 3, self.width_conv))
        out = torch.stack(views, 2).flatten(1, 2)  # c0: channel, height, width views, then c1, ...
        out = self.relu(self.dim_norm(out))
        out = self.relu(self.local_norm(self.local_fuse(out)))
        weights = torch.sigmoid(self.excite(self.relu(self.squeeze(self.pool(out)))))
        return self.relu(self.spatial_norm(self.spatial(out))) * weights


class DiCEBottleneck(PreActBottleneck):
    """Pre-activation bottleneck whose 3×3 is ``units`` DiCE units in sequence."""

    def __init__(self, cin: int, cout: int, norm: str = "batch", units: int = 1, size: int = DEFAULT_SIZE,
                 mid: int | None = None) -> None:
        mid = inner_width(cout, mid)
        super().__init__(cin, cout, norm, mid,
                         lambda width: nn.Sequential(*[DiCEUnit(width, width, norm, size) for _ in range(units)]),
                         "dice")


@register_block("dice")
def dice(cin: int, cout: int, norm: str, units: int = 1, mid: int | None = None,
         size: int | None = None) -> nn.Module:
    """Registry factory for ``block: dice`` (``block_args: {units: 1|2, mid: N}``; ``size`` from the net)."""
    for name, value in (("units", units), ("size", size if size is not None else DEFAULT_SIZE)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise HGCError(f"config.block_args for 'dice': {name} must be a positive integer, got {value!r}")
    return DiCEBottleneck(cin, cout, norm, units, size or DEFAULT_SIZE, mid)
