"""Registry of stems (image → features at ¼ resolution), chosen by the config's ``stem`` name.

Both registered stems share one layout and differ in widths: ``pytorch-pose`` (the default) scales with
``features``; ``princeton`` (the official PyTorch port of Newell et al.) keeps 64/128 fixed.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F
from torch import nn

from compress.errors import HGCError
from compress.nets.blocks import residuals
from compress.nets.layers import ConvNormReLU

if TYPE_CHECKING:
    from compress.nets.config import HourglassConfig

StemFactory = Callable[["HourglassConfig"], nn.Module]
_STEMS: dict[str, StemFactory] = {}


def register_stem(name: str) -> Callable[[StemFactory], StemFactory]:
    """Decorator: make a stem (a module class or factory taking the config) available as ``stem: name``."""

    def add(factory: StemFactory) -> StemFactory:
        if name in _STEMS:
            raise ValueError(f"stem {name!r} registered twice")
        _STEMS[name] = factory
        return factory

    return add


def build_stem(config: "HourglassConfig") -> nn.Module:
    """Instantiate the stem the config names; an unknown name is a one-line error listing the known ones."""
    if config.stem not in _STEMS:
        raise HGCError(f"config.stem: unknown stem {config.stem!r}; registered: {', '.join(stem_names())}")
    return _STEMS[config.stem](config)


def stem_names() -> list[str]:
    """Names a config's ``stem`` may take."""
    return sorted(_STEMS)


class Stem(nn.Module):
    """7×7/2 conv, residual, 2×2 pool, two residuals: image → ``features`` channels at ¼ resolution.

    ``widths`` = (conv out, first residual out, second residual out); the third residual ends at ``features``.
    """

    def __init__(self, config: "HourglassConfig", widths: tuple[int, int, int]) -> None:
        super().__init__()
        low, mid, high = widths
        self.conv = ConvNormReLU(3, low, 7, config.norm, stride=2)
        half, quarter = config.input_size // 2, config.input_size // 4  # feature-map sides (for ``dice``)
        self.res1 = residuals(config.block, low, mid, 1, config.norm, config.block_args, half)
        self.res2 = residuals(config.block, mid, high, 1, config.norm, config.block_args, quarter)
        self.res3 = residuals(config.block, high, config.features, 1, config.norm, config.block_args, quarter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.res1(self.conv(x))
        return self.res3(self.res2(F.max_pool2d(x, 2)))


@register_stem("pytorch-pose")
def pytorch_pose_stem(config: "HourglassConfig") -> nn.Module:
    """pytorch-pose ``HourglassNet``: widths follow ``features`` (f/4, f/2, f) — 64, 128, 256 for hg_s2_b1."""
    f = config.features
    return Stem(config, (f // 4, f // 2, f))


PRINCETON_WIDTHS = (64, 128, 128)


@register_stem("princeton")
def princeton_stem(config: "HourglassConfig") -> nn.Module:
    """princeton-vl ``PoseNet.pre``: fixed widths 64, 128, 128; the change to ``features`` comes last."""
    return Stem(config, PRINCETON_WIDTHS)
