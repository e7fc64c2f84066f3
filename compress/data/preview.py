"""Sample grids with the skeleton drawn over each person: look at a data set before trusting it.

Works for any source whose items are ``Sample``s (synthetic, MPII, ...): each tile is the
``200·scale`` person box around ``center``. Colours: the person's right limbs red, left limbs blue,
centre line yellow; annotated joints are filled dots, occluded ones hollow rings; joints that are
not annotated (``visible == 0``) and limbs touching them are omitted.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from . import transforms as T
from .sample import Sample
from .skeleton import JOINT_NAMES, LIMBS
from ..errors import HGCError
from ..io import atomic_path

RIGHT_COLOR = (240, 40, 40)
LEFT_COLOR = (40, 120, 255)
CENTER_COLOR = (255, 215, 0)


def _side_color(a: int, b: int) -> tuple[int, int, int]:
    sides = {JOINT_NAMES[a][:2], JOINT_NAMES[b][:2]}
    if "r_" in sides:
        return RIGHT_COLOR
    if "l_" in sides:
        return LEFT_COLOR
    return CENTER_COLOR


def draw_skeleton(image: np.ndarray, joints: np.ndarray, visible: np.ndarray,
                  occluded: np.ndarray | None = None) -> np.ndarray:
    """A copy of ``image`` (RGB uint8) with limbs and joints drawn (see the module docstring)."""
    out = image.copy()
    size = max(out.shape[:2])
    thick, radius = max(1, round(size / 128)), max(2, round(size / 80))
    pts = [tuple(int(v) for v in np.round(p * 16)) for p in np.asarray(joints, np.float64)]
    for a, b in LIMBS:
        if visible[a] > 0 and visible[b] > 0:
            cv2.line(out, pts[a], pts[b], _side_color(a, b), thick, cv2.LINE_AA, 4)
    hidden = np.zeros(len(pts)) if occluded is None else np.asarray(occluded)
    for j, p in enumerate(pts):
        if visible[j] > 0:
            color = _side_color(j, j)
            if hidden[j] > 0:
                cv2.circle(out, p, radius * 16, color, 1, cv2.LINE_AA, 4)
            else:
                cv2.circle(out, p, radius * 16, color, -1, cv2.LINE_AA, 4)
                cv2.circle(out, p, radius * 16, (0, 0, 0), 1, cv2.LINE_AA, 4)
    return out


def sample_tile(sample: Sample, cell: int) -> np.ndarray:
    """The sample's person box resized to ``cell``×``cell`` with its skeleton drawn."""
    matrix = T.crop_matrix(sample.center, sample.scale, (cell, cell))
    image = T.warp_image(sample.image, matrix, (cell, cell))
    joints = T.transform_points(sample.joints, matrix)
    return draw_skeleton(image, joints, sample.visible, sample.occluded)


def preview_grid(dataset: Any, n: int, cols: int = 8, cell: int = 192) -> np.ndarray:
    """RGB uint8 grid of the first ``n`` samples of ``dataset`` (anything indexable giving ``Sample``s)."""
    n = min(int(n), len(dataset))
    if n <= 0 or cols <= 0:
        raise ValueError(f"preview_grid: need n > 0 samples and cols > 0, got n={n}, cols={cols}")
    cols = min(cols, n)
    rows = -(-n // cols)
    gap = 2
    grid = np.full((rows * (cell + gap) - gap, cols * (cell + gap) - gap, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        y, x = r * (cell + gap), c * (cell + gap)
        grid[y:y + cell, x:x + cell] = sample_tile(dataset[i], cell)
    return grid


def save_preview(dataset: Any, n: int, path: str | os.PathLike, cols: int = 8, cell: int = 192) -> Path:
    """Write ``preview_grid(dataset, n)`` as a PNG, atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    ok, data = cv2.imencode(".png", cv2.cvtColor(preview_grid(dataset, n, cols, cell), cv2.COLOR_RGB2BGR))
    if not ok:
        raise HGCError(f"{path}: could not encode the preview grid as PNG")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())
    return path
