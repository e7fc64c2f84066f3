"""Registry of residual block types, chosen by name from the model config.

A block factory takes ``(in_channels, out_channels, norm, **block_args)`` and returns a module that maps
N×in×H×W to N×out×H×W. New block types register themselves (a module under ``blocks/``, imported below)
without touching the hourglass code. A factory that declares a ``size`` keyword (e.g. ``dice``, whose
convolutions run along height and width) is also given the side of the feature map it will see in the
configured network, when the caller knows it. The registry itself lives in ``registry.py``.
"""
# importing a block module registers its blocks
from compress.nets.blocks import (  # noqa: F401
    bottleneck,
    bottleneck4,
    dice,
    dws,
    gated,
    hru,
    multidilated,
)
from compress.nets.blocks.registry import (
    BlockFactory,
    block_names,
    block_paths,
    build_block,
    pruning_hints,
    register_block,
    residuals,
)

__all__ = ["BlockFactory", "block_names", "block_paths", "build_block", "pruning_hints", "register_block",
           "residuals"]
