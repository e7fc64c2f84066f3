"""Small building pieces shared by blocks: norms, input normalisation, pre-activation conv.

Kept free of any cached shape so structured pruning can resize every layer in place.
"""
from __future__ import annotations

import torch
from torch import nn


def group_count(channels: int, max_groups: int = 32) -> int:
    """Largest group count ≤ ``max_groups`` that divides ``channels`` (GroupNorm needs a divisor)."""
    return next(g for g in range(min(max_groups, channels), 0, -1) if channels % g == 0)


def make_norm(kind: str, channels: int) -> nn.Module:
    """BatchNorm2d or GroupNorm over ``channels``, chosen by the config's ``norm``."""
    if kind == "group":
        return nn.GroupNorm(group_count(channels), channels)
    return nn.BatchNorm2d(channels)


def zero_convs(*convs: nn.Conv2d) -> None:
    """Zero the weights and biases of ``convs``: a residual branch ending in them outputs zero, so its
    block starts as its skip path (``zero_init_last`` of the blocks)."""
    for conv in convs:
        nn.init.zeros_(conv.weight)
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)


class InputNorm(nn.Module):
    """Per-channel (x − mean) / std inside the network, so exported models carry their preprocessing."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("inv_std", 1.0 / torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.inv_std


class ConvNormReLU(nn.Sequential):
    """conv → norm → ReLU (post-activation), used by the stem and the per-stack heads."""

    def __init__(self, cin: int, cout: int, kernel: int, norm: str, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=True),
            make_norm(norm, cout),
            nn.ReLU(inplace=True),
        )
