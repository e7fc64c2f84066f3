"""Moving a teacher's weights into a swapped student: copy what fits, pair the blocks, keep functions.

``copy_matching`` copies every tensor whose name and shape agree (a ``dws`` block keeps a bottleneck's
1×1 convs and norms; only its new 3×3 starts fresh). ``plan_blocks`` sorts the student's blocks
(``compress.nets.blocks.block_paths``) into *kept* (same layers, every tensor copied: nothing to learn),
*blockwise* (changed, with a teacher block at the same path taking and giving tensors of the same shape:
it can learn to imitate it) and *scratch* (no such counterpart: a width or stack change).
``preserve_function`` starts layers the teacher does not have so the student computes what the teacher
does there: a new transposed-conv upsampler as nearest ×2, a new concat fusion as the sum it replaces.
``preserve_blocks`` does the same for blocks: a block that can contain the teacher's (``adopt``: an HRU
around a bottleneck) takes its weights, and a block appended to a teacher's sequence (``modules: 4``)
starts as the identity (``zero_init_last``); a swap that only adds to the teacher then starts exactly
as the teacher (the blocks' own methods, as timm's ``zero_init_last``, say how each does it).
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import torch
from torch import nn

from compress.nets.blocks import block_paths
from compress.nets.hourglass import Hourglass


def copy_matching(student: nn.Module, teacher: nn.Module) -> tuple[list[str], list[str]]:
    """Copy each teacher tensor into the student tensor of the same name and shape; (copied, not copied)."""
    source = teacher.state_dict()
    copied, fresh = [], []
    with torch.no_grad():
        for name, tensor in student.state_dict().items():
            theirs = source.get(name)
            if theirs is not None and theirs.shape == tensor.shape and theirs.dtype == tensor.dtype:
                tensor.copy_(theirs)
                copied.append(name)
            else:
                fresh.append(name)
    return copied, fresh


@dataclass
class BlockPlan:
    """The student's blocks sorted by how they start: kept, imitated blockwise, or from scratch."""

    kept: list[str] = field(default_factory=list)
    blockwise: list[str] = field(default_factory=list)
    scratch: list[str] = field(default_factory=list)


def block_io(model: nn.Module, paths: list[str], input_size: int) -> dict[str, tuple[tuple[int, ...], ...]]:
    """(input shape, output shape) of each block at ``paths`` on one input_size² image (eval, no_grad)."""
    modules = dict(model.named_modules())
    shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

    def keep(path: str):  # a forward hook must return None, or it replaces the module's output
        def hook(_module: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
            shapes.setdefault(path, (tuple(inputs[0].shape), tuple(out.shape)))
        return hook

    hooks = [modules[p].register_forward_hook(keep(p)) for p in paths]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, input_size, input_size, device=next(model.parameters()).device))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return shapes


def _layout(module: nn.Module) -> list[tuple[str, type, tuple[int, ...]]]:
    """What a block is made of: every submodule's type and every tensor's shape, by name."""
    types = [(name, type(m), ()) for name, m in module.named_modules()]
    return types + [(name, type(t), tuple(t.shape)) for name, t in module.state_dict().items()]


def plan_blocks(student: nn.Module, teacher: nn.Module, copied: list[str], input_size: int,
                preserved: Collection[str] = frozenset()) -> BlockPlan:
    """Sort the student's blocks by their teacher counterpart (same path) and what was copied into them.

    Blocks in ``preserved`` (``preserve_blocks``: they already compute the teacher's function) are kept.
    """
    mine, theirs = block_paths(student), block_paths(teacher)
    s_io, t_io = block_io(student, mine, input_size), block_io(teacher, theirs, input_size)
    s_modules, t_modules = dict(student.named_modules()), dict(teacher.named_modules())
    done, preserved = set(copied), set(preserved)
    plan = BlockPlan()
    for path in mine:
        if path in preserved:
            plan.kept.append(path)
            continue
        if path not in t_io or t_io[path] != s_io[path]:
            plan.scratch.append(path)
            continue
        names = [f"{path}.{k}" for k in s_modules[path].state_dict()]
        same = _layout(s_modules[path]) == _layout(t_modules[path]) and all(n in done for n in names)
        (plan.kept if same else plan.blockwise).append(path)
    return plan


def preserve_function(student: nn.Module, teacher: nn.Module) -> list[str]:
    """Start the student's new upsamplers and fusions as the teacher's fixed operations; their names.

    A ``ConvTranspose2d(C, C, 4, stride 2, padding 1)`` whose per-channel kernel is the outer product of
    (0, 1, 1, 0) with itself is exactly nearest ×2 upsampling; a ``Conv2d(2C, C, 1)`` of weights [I | I]
    is exactly skip + up. Only where the teacher's hourglass at the same path has neither (nearest, add).
    """
    t_modules = dict(teacher.named_modules())
    changed = []
    with torch.no_grad():
        for path, module in student.named_modules():
            theirs = t_modules.get(path)
            if not isinstance(module, Hourglass) or not isinstance(theirs, Hourglass):
                continue
            if module.up is not None and theirs.up is None and _nearest_up(module.up):
                changed.append(f"{path}.up")
            if module.fuse is not None and theirs.fuse is None and _sum_fuse(module.fuse):
                changed.append(f"{path}.fuse")
    return changed


def preserve_blocks(student: nn.Module, teacher: nn.Module) -> list[str]:
    """Start student blocks as the teacher computes where a block can: the paths of those it changed.

    A block whose teacher counterpart (same path) it can contain takes it (``adopt``); a block at a path
    the teacher lacks, appended to a sequence the teacher has (an index past the teacher's last), whose
    input and output channels agree, starts as the identity (``zero_init_last``).
    """
    s_modules, t_modules = dict(student.named_modules()), dict(teacher.named_modules())
    t_blocks = set(block_paths(teacher))
    changed = []
    with torch.no_grad():
        for path in block_paths(student):
            block = s_modules[path]
            if path in t_blocks:
                if hasattr(block, "adopt") and block.adopt(t_modules[path]):
                    changed.append(path)
                continue
            parent, _, index = path.rpartition(".")
            if (isinstance(t_modules.get(parent), nn.Sequential) and index.isdigit()
                    and int(index) >= len(t_modules[parent]) and hasattr(block, "zero_init_last")
                    and _same_channels(block)):
                block.zero_init_last()
                changed.append(path)
    return changed


def _same_channels(block: nn.Module) -> bool:
    """Whether a residual block keeps its channel count (no skip projection), so zeroed it is the identity."""
    return all(getattr(module, "skip", None) is None for module in block.modules())


def _nearest_up(up: nn.Module) -> bool:
    """Make a C→C 4×4/2 transposed conv (padding 1) nearest ×2 upsampling; False if it is not one."""
    if not (isinstance(up, nn.ConvTranspose2d) and up.in_channels == up.out_channels and up.groups == 1
            and up.kernel_size == (4, 4) and up.stride == (2, 2) and up.padding == (1, 1)
            and up.output_padding == (0, 0) and up.dilation == (1, 1)):
        return False
    ramp = up.weight.new_tensor([0.0, 1.0, 1.0, 0.0])
    channels = torch.arange(up.in_channels)
    up.weight.zero_()
    up.weight[channels, channels] = torch.outer(ramp, ramp)
    if up.bias is not None:
        up.bias.zero_()
    return True


def _sum_fuse(fuse: nn.Module) -> bool:
    """Make a 2C→C 1×1 conv the sum of its two input halves; False if it is not one."""
    if not (isinstance(fuse, nn.Conv2d) and fuse.groups == 1 and fuse.kernel_size == (1, 1)
            and fuse.in_channels == 2 * fuse.out_channels):
        return False
    half = fuse.out_channels
    eye = torch.eye(half, dtype=fuse.weight.dtype, device=fuse.weight.device)
    fuse.weight.zero_()
    fuse.weight[:, :half, 0, 0] = eye
    fuse.weight[:, half:, 0, 0] = eye
    if fuse.bias is not None:
        fuse.bias.zero_()
    return True
