"""Soft-gated residual block (seed 003, Bulat et al. 2020): ``y = alpha ⊙ x + F(x)``.

Why: a learnable per-channel gate on the skip lets training decide how much of each identity channel
to pass, which the seed shows allows lighter hourglasses; F is the seed's hierarchical, parallel
multi-scale block: three pre-activation 3×3 convs out → out/2 → out/4 → out/4, each fed by the
previous one, whose outputs are concatenated back to ``out`` channels (receptive fields 3, 5, 7).
``alpha`` lives in ``ChannelScale`` as a (1, C, 1, 1) parameter initialised to 1 (a plain residual at
the start); torch-pruning follows it as an unwrapped parameter pruned along dim 1
(``ChannelScale.pruning_unwrapped()``, collected by ``blocks.pruning_hints``), and
``width_spec``/``resized`` let ``config.widths`` record and rebuild a narrowed one. When the channel
count changes the skip is a 1×1 projection and alpha gates the projected skip.
"""
from __future__ import annotations

import torch
from torch import nn

from compress.errors import HGCError
from compress.nets.blocks.registry import register_block
from compress.nets.layers import make_norm, zero_convs


class ChannelScale(nn.Module):
    """``x * alpha`` with a learnable per-channel ``alpha`` shaped (1, C, 1, 1)."""

    def __init__(self, channels: int, init: float = 1.0) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.full((1, channels, 1, 1), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.alpha

    def pruning_unwrapped(self) -> list[tuple[nn.Parameter, int]]:
        """For torch-pruning's ``unwrapped_parameters``: alpha is pruned along dim 1."""
        return [(self.alpha, 1)]

    def width_spec(self) -> list[int]:
        """Channel spec for ``compress.nets.widths``: [C]."""
        return [self.alpha.shape[1]]

    def resized(self, spec: list[int]) -> ChannelScale:
        """A fresh gate of ``spec[0]`` channels (``widths.resized`` calls this)."""
        if len(spec) != 1:
            raise HGCError(f"config.widths: ChannelScale takes [channels], got {spec}")
        return ChannelScale(spec[0])


def split_widths(cout: int) -> tuple[int, int, int]:
    """out/2, out/4 and the rest: the three branch widths that concatenate back to ``cout``."""
    first, second = cout // 2, cout // 4
    return first, second, cout - first - second


class SoftGatedBlock(nn.Module):
    """``alpha ⊙ skip(x) + concat(h1, h2, h3)`` with h1 = conv(x), h2 = conv(h1), h3 = conv(h2)."""

    def __init__(self, cin: int, cout: int, norm: str = "batch") -> None:
        super().__init__()
        c1, c2, c3 = split_widths(cout)
        self.bn1 = make_norm(norm, cin)
        self.conv1 = nn.Conv2d(cin, c1, 3, padding=1, bias=True)
        self.bn2 = make_norm(norm, c1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1, bias=True)
        self.bn3 = make_norm(norm, c2)
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.skip = nn.Conv2d(cin, cout, 1, bias=True) if cin != cout else None
        self.gate = ChannelScale(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h1 = self.conv1(self.relu(self.bn1(x)))
        h2 = self.conv2(self.relu(self.bn2(h1)))
        h3 = self.conv3(self.relu(self.bn3(h2)))
        return self.gate(self.skip(x) if self.skip is not None else x) + torch.cat([h1, h2, h3], 1)

    def zero_init_last(self) -> None:
        """Zero the three convs (each feeds the concatenation): the block starts as ``alpha ⊙ skip(x)``."""
        zero_convs(self.conv1, self.conv2, self.conv3)


@register_block("gated")
def gated(cin: int, cout: int, norm: str) -> nn.Module:
    """Registry factory for ``block: gated`` (no ``block_args``)."""
    if cout < 4:
        raise HGCError(f"block 'gated' needs at least 4 output channels (out/2, out/4, out/4), got {cout}")
    return SoftGatedBlock(cin, cout, norm)
