"""The pre-activation bottleneck frame that most blocks of the family share.

norm → ReLU → 1×1 (in → mid) → norm → ReLU → **middle** → norm → ReLU → 1×1 (mid → out), plus a 1×1
projection on the skip path when the channel count changes. Blocks differ only in the middle (a 3×3,
a depthwise-separable 3×3, dilated branches, DiCE units), so each passes a builder for its own and the
name it is stored under: the state-dict keys (``conv2``, ``branches``, ``dice``) stay those of the checkpoints.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from compress.nets.layers import make_norm, zero_convs


class PreActBottleneck(nn.Module):
    """Pre-activation residual; ``middle(mid)`` builds its spatial part (``mid`` → ``mid`` channels)."""

    def __init__(self, cin: int, cout: int, norm: str, mid: int, middle: Callable[[int], nn.Module],
                 middle_name: str) -> None:
        super().__init__()
        self.bn1 = make_norm(norm, cin)
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=True)
        self.bn2 = make_norm(norm, mid)
        setattr(self, middle_name, middle(mid))  # built in layer order: seeded inits stay
        self._middle_name = middle_name
        self.bn3 = make_norm(norm, mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.skip = nn.Conv2d(cin, cout, 1, bias=True) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = getattr(self, self._middle_name)(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + (self.skip(x) if self.skip is not None else x)

    def zero_init_last(self) -> None:
        """Zero the residual branch's last conv: the block starts as its skip path (identity if cin == cout)."""
        zero_convs(self.conv3)


def inner_width(cout: int, mid: int | None) -> int:
    """The middle width: ``mid`` when given, else half the output channels (at least 1)."""
    return mid or max(cout // 2, 1)
