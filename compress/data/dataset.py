"""From a data spec to training/evaluation tensors: crop, augment, heatmap targets.

``open_source('synthetic:val' | 'mpii:ANNOT[:IMAGES]')`` gives a source of ``Sample``s; ``PoseDataset``
turns one into tensors for a model whose input and heatmap sizes it is given.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from compress.data import mpii
from compress.data import transforms as T
from compress.data.sample import Sample
from compress.data.synthetic import SyntheticPose
from compress.errors import HGCError

SPLITS = ("train", "val", "test")


def open_source(spec: str, size: int = 128, seed: int = 0, skip_bad: bool = False) -> Any:
    """Open ``synthetic[:split]`` (default ``val``) or ``mpii:ANNOT[:IMAGES]`` as a source of Samples."""
    kind, _, rest = spec.partition(":")
    if kind == "synthetic":
        split = rest or "val"
        if split not in SPLITS:
            raise HGCError(f"--data {spec!r}: unknown synthetic split {split!r}; use one of {', '.join(SPLITS)}")
        return SyntheticPose(split=split, seed=seed, size=size)
    if kind == "mpii":
        return mpii.open_source(spec, skip_bad=skip_bad)
    raise HGCError(f"--data {spec!r}: unknown data source {kind!r}; use synthetic[:split] or mpii:ANNOT[:IMAGES]")


def train_spec(spec: str) -> str:
    """The training split for a data spec: ``synthetic`` alone means its endless ``train`` stream.

    The fixed ``val``/``test`` splits are refused: training on them would make their scores meaningless.
    """
    if spec in ("synthetic:val", "synthetic:test"):
        raise HGCError(f"--data {spec}: the {spec.split(':')[1]} split is for evaluation; train on synthetic")
    return "synthetic:train" if spec == "synthetic" else spec


def val_spec(spec: str) -> str:
    """The validation split matching a training spec (synthetic → synthetic:val; MPII is given explicitly)."""
    return "synthetic:val" if spec.startswith("synthetic") else spec


@dataclass
class Augment:
    """Training-time augmentation (MPII convention): rotation ±30°, scale 0.75–1.25, flip, colour jitter.

    A source may carry its own default as ``source.train_augment`` (a dict of these fields): the synthetic
    generator already varies rotation, scale and colour, so it asks for flips only.
    """

    rotation: float = 30.0
    scale: tuple[float, float] = (0.75, 1.25)
    flip: float = 0.5
    color: float = 0.2


class PoseDataset(torch.utils.data.Dataset):
    """Tensors for one source: image (3×S×S, RGB in [0,1]), heatmap target, joint weights and eval meta.

    In training mode item ``k`` is the k-th draw of an endless stream: the sample index and the
    augmentation both follow from ``(seed, k)``, so a resumed run sees exactly the same batches.
    """

    def __init__(self, source: Any, input_size: int, heatmap_size: int, sigma: float = 1.0,
                 train: bool = False, seed: int = 0, augment: Augment | None = None) -> None:
        self.source, self.input_size, self.heatmap_size = source, input_size, heatmap_size
        self.sigma, self.train, self.seed = sigma, train, seed
        self.augment = augment or Augment(**getattr(source, "train_augment", {}))
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.source)

    def index_of(self, position: int) -> int:
        """Sample index of stream position ``position``: a fresh permutation per epoch for finite sources."""
        n = len(self.source)
        if not self.train or n >= 2**30:
            return position % n
        epoch = position // n
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, np.random.default_rng([self.seed, epoch]).permutation(n))
        return int(self._order[1][position % n])

    def __getitem__(self, position: int) -> dict[str, Any]:
        index = self.index_of(position)
        sample: Sample = self.source[index]
        rotation, scale, flip = 0.0, sample.scale, False
        rng = np.random.default_rng([self.seed, position, 7]) if self.train else None
        if rng is not None:
            a = self.augment
            rotation, factor, flip = T.augment_params(rng, rotation=a.rotation, scale=a.scale, flip_prob=a.flip)
            scale = sample.scale * factor
        size = (self.input_size, self.input_size)
        matrix = T.crop_matrix(sample.center, scale, size, rotation)
        image = T.warp_image(sample.image, matrix, size)
        joints = T.transform_points(sample.joints, matrix)
        visible = sample.visible.astype(np.float32)
        if flip:
            image, joints, visible = T.flip_horizontal(image, joints, visible, self.input_size)
        if rng is not None and self.augment.color > 0:
            image = T.color_jitter(image, rng, self.augment.color)
        target, weight = T.gaussian_heatmaps(joints, visible, size, (self.heatmap_size,) * 2, self.sigma)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0),
            "target": torch.from_numpy(target),
            "weight": torch.from_numpy(weight),
            "joints": torch.from_numpy(sample.joints.astype(np.float32)),
            "visible": torch.from_numpy(sample.visible.astype(np.float32)),
            "head_size": torch.tensor(float(sample.head_size), dtype=torch.float32),
            "inverse": torch.from_numpy(T.invert_affine(matrix).astype(np.float32)),
            "index": index,
            "record": sample.record if sample.record >= 0 else index,
        }
