"""One annotated person, as every data source hands it to the pipeline.

Sources (synthetic, MPII h5, HRNet json) all produce ``Sample``; transforms and metrics consume it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Sample:
    """An RGB image with one person's 16 joints in image pixels.

    ``center``/``scale`` follow MPII (person box side ≈ 200·scale px) and are used as given:
    sources apply their own conventions (MPII's ``c_y += 15·s, s *= 1.25``) before building a Sample.
    ``head_size`` is the PCKh normaliser already multiplied by 0.6 (0.6 · ‖head-box diagonal‖).
    """

    image: np.ndarray  # H×W×3 uint8, RGB
    joints: np.ndarray  # (16, 2) float32, x/y in image pixels
    visible: np.ndarray  # (16,) float32, 1 = annotated (counts in PCKh), 0 = missing
    center: np.ndarray  # (2,) float32
    scale: float
    head_size: float
    name: str = ""
    occluded: np.ndarray | None = None  # (16,) float32, 1 = annotated but hidden (self-occlusion/occluder)
    record: int = -1  # index of the record in its annotation file (−1 where the source has none)

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(f"sample {self.name!r}: image must be H×W×3 uint8, got {self.image.shape} {self.image.dtype}")
        if self.joints.shape != (16, 2) or self.visible.shape != (16,):
            raise ValueError(f"sample {self.name!r}: joints must be (16, 2) and visible (16,)")
