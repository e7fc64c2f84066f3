"""The block registry itself: names → factories, building, and the pruning hints blocks declare.

Kept apart from the package ``__init__`` (which imports every block module so they register) so a
block module imports this one without an import cycle.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from compress.errors import HGCError

BlockFactory = Callable[..., nn.Module]
_BLOCKS: dict[str, BlockFactory] = {}
_SIZED: set[str] = set()  # factories that take the feature-map side as ``size=``


def register_block(name: str) -> Callable[[BlockFactory], BlockFactory]:
    """Decorator: make a block factory available to configs as ``block: name``."""

    def add(factory: BlockFactory) -> BlockFactory:
        if name in _BLOCKS:
            raise ValueError(f"block {name!r} registered twice")
        _BLOCKS[name] = factory
        if "size" in inspect.signature(factory).parameters:
            _SIZED.add(name)
        return factory

    return add


def build_block(name: str, cin: int, cout: int, norm: str, block_args: dict[str, Any] | None = None,
                size: int | None = None) -> nn.Module:
    """Instantiate the registered block ``name``; unknown names and arguments are one-line errors.

    ``size`` (the feature-map side, when known) reaches only factories that declare it; a ``size`` given
    in ``block_args`` wins over it.
    """
    if name not in _BLOCKS:
        raise HGCError(f"config.block: unknown block type {name!r}; registered: {', '.join(block_names())}")
    kwargs = {"size": size} if size is not None and name in _SIZED else {}
    try:
        block = _BLOCKS[name](cin, cout, norm, **{**kwargs, **(block_args or {})})
    except TypeError as exc:
        raise HGCError(f"config.block_args for {name!r}: {exc}") from None
    block.hgc_block = name  # marks the module as a registry block (``block_paths`` finds it by this)
    return block


def residuals(name: str, cin: int, cout: int, count: int, norm: str,
              block_args: dict[str, Any] | None = None, size: int | None = None) -> nn.Sequential:
    """``count`` blocks of type ``name`` in sequence; the first one changes ``cin`` to ``cout``."""
    return nn.Sequential(*[build_block(name, cin if i == 0 else cout, cout, norm, block_args, size)
                           for i in range(count)])


def pruning_hints(model: nn.Module) -> tuple[list[nn.Module], list[tuple[nn.Parameter, int]]]:
    """What structured pruning (torch-pruning) must be told about the blocks inside ``model``.

    Returns (ignored layers, unwrapped parameters): layers whose "channels" are not feature channels
    (``dice``'s height/width-wise convs, one filter per row/column) and custom per-channel parameters
    with the dim to prune (``gated``'s alpha, dim 1). Modules declare them with ``pruning_ignored()``
    and ``pruning_unwrapped()``; pass them as ``ignored_layers`` / ``unwrapped_parameters``.
    """
    ignored: list[nn.Module] = []
    unwrapped: list[tuple[nn.Parameter, int]] = []
    for module in model.modules():
        if hasattr(module, "pruning_ignored"):
            ignored.extend(module.pruning_ignored())
        if hasattr(module, "pruning_unwrapped"):
            unwrapped.extend(module.pruning_unwrapped())
    return ignored, unwrapped


def block_paths(model: nn.Module) -> list[str]:
    """``named_modules`` paths of every block ``build_block`` made inside ``model`` (outermost only).

    Architecture swaps pair a student's blocks with the teacher's by these paths
    (``stacks.0.hourglass.skip.0``, ``stem.res1.0``, …); a block nested in another block is not listed.
    """
    paths: list[str] = []
    for name, module in model.named_modules():
        if hasattr(module, "hgc_block") and not any(name.startswith(p + ".") for p in paths):
            paths.append(name)
    return paths


def block_names() -> list[str]:
    """Names a config's ``block`` may take (for error messages and ``--help``)."""
    return sorted(_BLOCKS)
