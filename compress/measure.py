"""Size and cost of a model: parameters and multiply-accumulates.

MACs are counted by forward hooks on Conv2d, ConvTranspose2d and Linear layers (weights × output
positions, grouped convs included); norms, activations, pooling and additions are not counted.
"""
from __future__ import annotations

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable and frozen; buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_size: int, channels: int = 3) -> int:
    """Multiply-accumulates of one forward pass at batch 1 and ``input_size``×``input_size``."""
    total = 0

    def conv_hook(module: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.ConvTranspose2d):
            # every input position scatters a full kernel: in positions × k × cout × cin/groups
            positions = _inp[0].shape[2] * _inp[0].shape[3]
        else:
            positions = out.shape[2] * out.shape[3]
        total += positions * module.weight.numel()

    def linear_hook(module: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        total += module.weight.numel() * (out.numel() // out.shape[-1])

    hooks = []
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            hooks.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            hooks.append(module.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, channels, input_size, input_size))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return total
