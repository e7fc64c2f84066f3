"""The stacked hourglass network (Newell et al., 2016), configured entirely by ``HourglassConfig``.

The whole net on one screen: stem → [hourglass → residuals → head] × stacks, with intermediate
heatmaps remapped into the next stack. Recursion builds each hourglass; nothing caches a shape.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from compress.nets.blocks import residuals as build_residuals
from compress.nets.config import HourglassConfig
from compress.nets.layers import ConvNormReLU, InputNorm
from compress.nets.stems import build_stem
from compress.nets.widths import apply_widths


def residuals(cfg: HourglassConfig, cin: int, cout: int, count: int, size: int | None = None) -> nn.Sequential:
    """``count`` blocks of the configured type; the first one changes ``cin`` to ``cout``.

    ``size`` is the side of the feature map they see (derived from ``cfg.input_size``); blocks that depend
    on it (``dice``) take it, the others ignore it.
    """
    return build_residuals(cfg.block, cin, cout, count, cfg.norm, cfg.block_args, size)


class Hourglass(nn.Module):
    """One hourglass level: a skip branch at this resolution plus a pooled branch that recurses."""

    def __init__(self, cfg: HourglassConfig, depth: int, size: int | None = None) -> None:
        super().__init__()
        ch, n = cfg.features, cfg.modules
        size = cfg.heatmap_size if size is None else size
        self.skip = residuals(cfg, ch, ch, n, size)
        self.down = residuals(cfg, ch, ch, n, size // 2)
        self.inner = Hourglass(cfg, depth - 1, size // 2) if depth > 1 else residuals(cfg, ch, ch, n, size // 2)
        self.post = residuals(cfg, ch, ch, n, size // 2)
        self.up = nn.ConvTranspose2d(ch, ch, 4, stride=2, padding=1) if cfg.upsample == "deconv" else None
        self.fuse = nn.Conv2d(2 * ch, ch, 1) if cfg.skip == "concat" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip(x)
        low = self.post(self.inner(self.down(F.max_pool2d(x, 2))))
        up = self.up(low) if self.up is not None else F.interpolate(low, scale_factor=2.0, mode="nearest")
        return self.fuse(torch.cat([skip, up], 1)) if self.fuse is not None else skip + up


class Stack(nn.Module):
    """One stack: hourglass → residuals → 1×1 conv head → heatmap scores."""

    def __init__(self, cfg: HourglassConfig, depth: int) -> None:
        super().__init__()
        self.hourglass = Hourglass(cfg, depth)
        self.res = residuals(cfg, cfg.features, cfg.features, cfg.modules, cfg.heatmap_size)
        self.head = ConvNormReLU(cfg.features, cfg.features, 1, cfg.norm)
        self.score = nn.Conv2d(cfg.features, cfg.joints, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.head(self.res(self.hourglass(x)))
        return features, self.score(features)


class Merge(nn.Module):
    """Feeds a stack's features (and, with intermediate supervision, its heatmaps) into the next stack."""

    def __init__(self, cfg: HourglassConfig) -> None:
        super().__init__()
        self.features = nn.Conv2d(cfg.features, cfg.features, 1)
        self.heatmaps = nn.Conv2d(cfg.joints, cfg.features, 1) if cfg.intermediate else None

    def forward(self, x: torch.Tensor, features: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        x = x + self.features(features)
        return x + self.heatmaps(heatmaps) if self.heatmaps is not None else x


class StackedHourglass(nn.Module):
    """Image N×3×H×W (RGB in [0, 1]) → heatmaps N×stacks×joints×H/4×W/4 (Newell et al., Fig. 3)."""

    def __init__(self, config: HourglassConfig) -> None:
        super().__init__()
        self.config = config
        self.normalize = None if config.input.is_identity() else InputNorm(config.input.mean, config.input.std)
        self.stem = build_stem(config)
        self.stacks = nn.ModuleList(Stack(config, d) for d in config.depths())
        self.merges = nn.ModuleList(Merge(config) for _ in range(config.stacks - 1))
        apply_widths(self, config.widths)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.stem(self.normalize(image) if self.normalize is not None else image)
        heatmaps = []
        for i, stack in enumerate(self.stacks):
            features, scores = stack(x)
            heatmaps.append(scores)
            if i < len(self.merges):
                x = self.merges[i](x, features, scores)
        return torch.stack(heatmaps, 1)
