"""Key map of bearpaw ``pytorch-pose`` (``HourglassNet`` / ``hg``) checkpoints onto our hourglass.

Our default stem and bottleneck follow this layout, so only names change: ``hg.i.hg.L.j.b`` indexes
level L (0 = innermost) and branch j (0 skip, 1 down, 2 post, 3 innermost residuals). Its data loader
feeds N×3×H×W RGB in [0, 1] minus the training-set mean (``color_normalize`` never divides by the std).
"""
from __future__ import annotations

import torch

from compress.errors import HGCError
from compress.nets.config import HourglassConfig, InputSpec
from compress.nets.convert.common import Pair, conv, indices, norm

NAME = "pytorch-pose"
MARKERS = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "hg.", "res.", "fc.", "score.", "fc_.", "score_.")
INPUT_CONVENTION = ("pytorch-pose HourglassNet took N×3×H×W RGB in [0, 1] minus the training-set mean "
                    "(color_normalize subtracts the mean only); config.input applies that inside this model")
DEFAULT_MEAN = (0.4404, 0.4440, 0.4327)  # the MPII training-set mean pytorch-pose stores in data/mpii/mean.pth.tar
DEFAULT_STD = (1.0, 1.0, 1.0)
_BRANCHES = ("skip", "down", "post", "inner")


def infer_config(state: dict[str, torch.Tensor], input_size: int, input_spec: InputSpec) -> HourglassConfig:
    """Stacks, features, joints, depth per stack and blocks per residual read off an HourglassNet."""
    score = state.get("score.0.weight")
    if not isinstance(score, torch.Tensor) or score.dim() != 4:
        raise HGCError("guessed the pytorch-pose layout, but its first score conv 'score.0.weight' is missing "
                       "or not a 4-d tensor")
    joints, features = int(score.shape[0]), int(score.shape[1])
    stacks = indices(state, r"hg\.(\d+)\.")
    if stacks != list(range(len(stacks))) or not stacks:
        raise HGCError(f"guessed the pytorch-pose layout, but the hourglasses 'hg.N' are numbered {stacks}")
    depths = []
    for i in stacks:
        levels = indices(state, rf"hg\.{i}\.hg\.(\d+)\.")
        if levels != list(range(len(levels))) or not levels:
            raise HGCError(f"guessed the pytorch-pose layout, but 'hg.{i}.hg' has levels {levels}")
        depths.append(len(levels))
    blocks = indices(state, r"hg\.0\.hg\.0\.0\.(\d+)\.")
    if blocks != list(range(len(blocks))) or not blocks:
        raise HGCError(f"guessed the pytorch-pose layout, but 'hg.0.hg.0.0' has blocks {blocks}")
    return HourglassConfig(
        stacks=len(stacks), features=features, depth=depths[0] if len(set(depths)) == 1 else depths,
        modules=len(blocks), stem=NAME, input_size=input_size, joints=joints, input=input_spec)


def key_pairs(config: HourglassConfig) -> list[Pair]:
    """Every tensor HourglassNet(Bottleneck, stacks, blocks, classes) holds, paired with ours."""
    f, n = config.features, config.modules
    pairs = conv("conv1", "stem.conv.0") + norm("bn1", "stem.conv.1")
    pairs += _bottleneck("layer1.0", "stem.res1.0", f // 4, f // 2)
    pairs += _bottleneck("layer2.0", "stem.res2.0", f // 2, f)
    pairs += _bottleneck("layer3.0", "stem.res3.0", f, f)
    for i, depth in enumerate(config.depths()):
        pairs += _hourglass(f"hg.{i}.hg", f"stacks.{i}.hourglass", depth, n, f)
        for b in range(n):
            pairs += _bottleneck(f"res.{i}.{b}", f"stacks.{i}.res.{b}", f, f)
        pairs += conv(f"fc.{i}.0", f"stacks.{i}.head.0") + norm(f"fc.{i}.1", f"stacks.{i}.head.1")
        pairs += conv(f"score.{i}", f"stacks.{i}.score")
        if i < config.stacks - 1:
            pairs += conv(f"fc_.{i}", f"merges.{i}.features") + conv(f"score_.{i}", f"merges.{i}.heatmaps")
    return pairs


def _bottleneck(peer: str, ours: str, cin: int, cout: int) -> list[Pair]:
    """``Bottleneck``: bn1/conv1 … bn3/conv3, and ``downsample.0`` (our ``skip``) when cin != cout."""
    pairs = []
    for j in (1, 2, 3):
        pairs += norm(f"{peer}.bn{j}", f"{ours}.bn{j}") + conv(f"{peer}.conv{j}", f"{ours}.conv{j}")
    return pairs + (conv(f"{peer}.downsample.0", f"{ours}.skip") if cin != cout else [])


def _hourglass(peer: str, ours: str, depth: int, blocks: int, f: int) -> list[Pair]:
    """Level ``depth - 1`` of ``Hourglass.hg`` onto one of our levels; recursion walks inwards."""
    level = depth - 1
    pairs = []
    for branch in (0, 1, 2) if depth > 1 else (0, 1, 2, 3):
        for b in range(blocks):
            pairs += _bottleneck(f"{peer}.{level}.{branch}.{b}", f"{ours}.{_BRANCHES[branch]}.{b}", f, f)
    if depth > 1:
        pairs += _hourglass(peer, f"{ours}.inner", depth - 1, blocks, f)
    return pairs
