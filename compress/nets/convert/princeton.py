"""Key map of princeton-vl ``pytorch_stacked_hourglass`` (``PoseNet``) checkpoints onto our hourglass.

The port's stem has fixed 64/128 widths (our ``princeton`` stem), every ``Residual`` owns a
``skip_layer`` convolution even when it runs the identity (those are dropped), and the network takes
N×H×W×3 images in [0, 1] that it permutes itself (our model takes N×3×H×W; nothing else changes).
"""
from __future__ import annotations

import torch

from compress.errors import HGCError
from compress.nets.config import HourglassConfig, InputSpec
from compress.nets.convert.common import Pair, conv, dropped_conv, indices, norm
from compress.nets.stems import PRINCETON_WIDTHS

NAME = "princeton"
MARKERS = ("pre.", "hgs.", "outs.", "features.", "merge_features.", "merge_preds.")
INPUT_CONVENTION = ("princeton PoseNet took N×H×W×3 float RGB in [0, 1] and permuted it to N×3×H×W "
                    "itself; this model takes N×3×H×W RGB in [0, 1]: feed images.permute(0, 3, 1, 2)")
DEFAULT_MEAN = (0.0, 0.0, 0.0)
DEFAULT_STD = (1.0, 1.0, 1.0)


def infer_config(state: dict[str, torch.Tensor], input_size: int, input_spec: InputSpec) -> HourglassConfig:
    """Stacks, features, joints and per-stack depth read off the tensor names and shapes of a PoseNet."""
    score = state.get("outs.0.conv.weight")
    if not isinstance(score, torch.Tensor) or score.dim() != 4:
        raise HGCError("guessed the princeton layout, but its first score conv 'outs.0.conv.weight' is missing "
                       "or not a 4-d tensor")
    joints, features = int(score.shape[0]), int(score.shape[1])
    stacks = indices(state, r"hgs\.(\d+)\.")
    if stacks != list(range(len(stacks))) or not stacks:
        raise HGCError(f"guessed the princeton layout, but the hourglasses 'hgs.N' are numbered {stacks}")
    depths = []
    for i in stacks:
        nested = [k[len(f"hgs.{i}.0."):].count("low2.") for k in state if k.startswith(f"hgs.{i}.0.")]
        if not nested or max(nested) < 1:
            raise HGCError(f"guessed the princeton layout, but hourglass 'hgs.{i}.0' has no 'low2' branch")
        depths.append(max(nested))
    return HourglassConfig(
        stacks=len(stacks), features=features, depth=depths[0] if len(set(depths)) == 1 else depths,
        modules=1, stem=NAME, input_size=input_size, joints=joints, input=input_spec)


def key_pairs(config: HourglassConfig) -> list[Pair]:
    """Every tensor PoseNet(nstack, inp_dim, oup_dim) holds, paired with ours (or marked dropped)."""
    f = config.features
    low, mid, _ = PRINCETON_WIDTHS
    pairs = conv("pre.0.conv", "stem.conv.0") + norm("pre.0.bn", "stem.conv.1")
    pairs += _residual("pre.1", "stem.res1.0", low, mid)
    pairs += _residual("pre.3", "stem.res2.0", mid, mid)
    pairs += _residual("pre.4", "stem.res3.0", mid, f)
    for i, depth in enumerate(config.depths()):
        pairs += _hourglass(f"hgs.{i}.0", f"stacks.{i}.hourglass", depth, f)
        pairs += _residual(f"features.{i}.0", f"stacks.{i}.res.0", f, f)
        pairs += conv(f"features.{i}.1.conv", f"stacks.{i}.head.0") + norm(f"features.{i}.1.bn", f"stacks.{i}.head.1")
        pairs += conv(f"outs.{i}.conv", f"stacks.{i}.score")
        if i < config.stacks - 1:
            pairs += conv(f"merge_features.{i}.conv.conv", f"merges.{i}.features")
            pairs += conv(f"merge_preds.{i}.conv.conv", f"merges.{i}.heatmaps")
    return pairs


def _residual(peer: str, ours: str, cin: int, cout: int) -> list[Pair]:
    """``Residual``: bn1/conv1.conv/…/conv3.conv; ``skip_layer.conv`` runs only when cin != cout."""
    pairs = norm(f"{peer}.bn1", f"{ours}.bn1") + conv(f"{peer}.conv1.conv", f"{ours}.conv1")
    pairs += norm(f"{peer}.bn2", f"{ours}.bn2") + conv(f"{peer}.conv2.conv", f"{ours}.conv2")
    pairs += norm(f"{peer}.bn3", f"{ours}.bn3") + conv(f"{peer}.conv3.conv", f"{ours}.conv3")
    if cin != cout:
        return pairs + conv(f"{peer}.skip_layer.conv", f"{ours}.skip")
    return pairs + dropped_conv(f"{peer}.skip_layer.conv", cout, cin)


def _hourglass(peer: str, ours: str, depth: int, f: int) -> list[Pair]:
    """``Hourglass(n)``: up1 → skip, low1 → down, low2 → inner (recursing), low3 → post."""
    pairs = _residual(f"{peer}.up1", f"{ours}.skip.0", f, f) + _residual(f"{peer}.low1", f"{ours}.down.0", f, f)
    if depth > 1:
        pairs += _hourglass(f"{peer}.low2", f"{ours}.inner", depth - 1, f)
    else:
        pairs += _residual(f"{peer}.low2", f"{ours}.inner.0", f, f)
    return pairs + _residual(f"{peer}.low3", f"{ours}.post.0", f, f)
