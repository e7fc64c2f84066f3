"""Registry of residual block types, chosen by name from the model config.

A block factory takes ``(in_channels, out_channels, norm, **block_args)`` and returns a module that maps
N×in×H×W to N×out×H×W. New block types register here without touching the hourglass code.
"""
from __future__ import annotations

from typing import Any, Callable

from torch import nn

from compress.errors import HGCError

BlockFactory = Callable[..., nn.Module]
_BLOCKS: dict[str, BlockFactory] = {}


def register_block(name: str) -> Callable[[BlockFactory], BlockFactory]:
    """Decorator: make a block factory available to configs as ``block: name``."""

    def add(factory: BlockFactory) -> BlockFactory:
        if name in _BLOCKS:
            raise ValueError(f"block {name!r} registered twice")
        _BLOCKS[name] = factory
        return factory

    return add


def build_block(name: str, cin: int, cout: int, norm: str, block_args: dict[str, Any] | None = None) -> nn.Module:
    """Instantiate the registered block ``name``; unknown names and arguments are one-line errors."""
    if name not in _BLOCKS:
        raise HGCError(f"config.block: unknown block type {name!r}; registered: {', '.join(block_names())}")
    try:
        return _BLOCKS[name](cin, cout, norm, **(block_args or {}))
    except TypeError as exc:
        raise HGCError(f"config.block_args for {name!r}: {exc}") from None


def residuals(name: str, cin: int, cout: int, count: int, norm: str,
              block_args: dict[str, Any] | None = None) -> nn.Sequential:
    """``count`` blocks of type ``name`` in sequence; the first one changes ``cin`` to ``cout``."""
    return nn.Sequential(*[build_block(name, cin if i == 0 else cout, cout, norm, block_args) for i in range(count)])


def block_names() -> list[str]:
    """Names a config's ``block`` may take (for error messages and ``--help``)."""
    return sorted(_BLOCKS)


from compress.nets.blocks import bottleneck  # noqa: E402,F401  (registers the built-in blocks)
