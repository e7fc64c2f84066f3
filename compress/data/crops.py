"""Evaluation crops as arrays: the images a model is fed and what PCKh needs to score its heatmaps.

One place cuts them (``PoseDataset`` without augmentation), so the export parity check, int8
calibration and scoring, and ``evaluate`` see bit-identical images for the same spec and positions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from compress.data import transforms as T
from compress.data.dataset import PoseDataset, open_source
from compress.errors import HGCError
from compress.metrics import evaluate_predictions


@dataclass
class Crops:
    """Labelled evaluation crops: images N×3×S×S (float32) plus what PCKh needs to score predictions on them."""

    images: np.ndarray
    joints: np.ndarray
    visible: np.ndarray
    head_size: np.ndarray
    inverse: np.ndarray
    data: str
    start: int

    def __len__(self) -> int:
        return len(self.images)

    def head(self, count: int) -> "Crops":
        """The first ``count`` crops (all of them when there are fewer)."""
        return Crops(self.images[:count], self.joints[:count], self.visible[:count], self.head_size[:count],
                     self.inverse[:count], self.data, self.start)

    def points(self, heatmaps: np.ndarray) -> np.ndarray:
        """Joint positions (N×J×2, original image pixels) decoded from last-stack ``heatmaps`` (N×J×h×w)."""
        heatmaps = np.asarray(heatmaps, dtype=np.float32)
        size, hm = self.images.shape[-1], heatmaps.shape[-1]  # square crops and heatmaps
        coords, _ = T.decode_heatmaps(heatmaps)
        coords = T.heatmap_to_input(coords, (hm, hm), (size, size))
        return np.stack([T.transform_points(xy, inv) for xy, inv in zip(coords, self.inverse)])

    def pckh(self, heatmaps: np.ndarray) -> float:
        """Mean PCKh@0.5 of last-stack ``heatmaps`` (N×J×h×w) predicted for these crops."""
        preds = self.points(heatmaps)
        return float(evaluate_predictions(preds, self.joints, self.visible, self.head_size).table()["Mean"])


def eval_dataset(data: str, input_size: int, seed: int = 0, skip_bad: bool = False) -> PoseDataset:
    """``data`` as evaluation tensors for a model of ``input_size`` (no augmentation, heatmaps at S/4)."""
    source = open_source(data, size=input_size, seed=seed, skip_bad=skip_bad)
    return PoseDataset(source, input_size, input_size // 4)


def stack_items(items: Sequence[dict[str, Any]], data: str = "", start: int = 0) -> Crops:
    """``PoseDataset`` items stacked into ``Crops`` (``data`` and ``start`` say where they came from)."""
    return Crops(images=np.stack([it["image"].numpy() for it in items]).astype(np.float32),
                 joints=np.stack([it["joints"].numpy() for it in items]),
                 visible=np.stack([it["visible"].numpy() for it in items]),
                 head_size=np.array([float(it["head_size"]) for it in items]),
                 inverse=np.stack([it["inverse"].numpy() for it in items]), data=data, start=start)


def crops(data: str, input_size: int, count: int, start: int = 0, *, fewer_ok: bool = False,
          purpose: str = "crops") -> Crops:
    """``count`` evaluation crops of ``data`` from sample position ``start`` on (labels included).

    A source with fewer samples than asked is an error (``purpose`` names the job in it): silently
    calibrating on fewer would change the result. With ``fewer_ok`` it gives what there is instead.
    """
    if count < 1:
        raise HGCError(f"{purpose}: asked for {count} images; need at least 1")
    dataset = eval_dataset(data, input_size)
    if start + count > len(dataset):
        if not fewer_ok or start >= len(dataset):
            raise HGCError(f"{purpose}: asked for {count} images from position {start} of {data}, "
                           f"which has only {len(dataset)} samples")
        count = len(dataset) - start
    return stack_items([dataset[i] for i in range(start, start + count)], data, start)
