"""Crop/affine transforms, flips, colour jitter, Gaussian heatmap targets and heatmap decoding.

Pure numpy/OpenCV (no torch) so data loading, evaluation and the exported-model runtime share one
geometry. Coordinates are pixel centres (OpenCV convention: pixel (i, j) has its centre at x=j, y=i).

Conventions used throughout:

* ``crop_matrix`` maps original-image pixels to crop pixels; the crop covers a square of side
  ``200 · scale`` around ``center`` (MPII's person-box unit), rotated by ``rotation`` degrees
  (positive = content turns counter-clockwise on screen, as ``cv2.getRotationMatrix2D``).
* heatmap px = input px · (w / W) (and · h / H for y); ``heatmap_to_input`` is its exact inverse and
  ``gaussian_heatmaps`` places the Gaussian's (sub-pixel) peak there, so targets and decoding agree.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np

from .skeleton import flip_permutation

BOX_UNIT = 200.0  # MPII: a person box of side 200·scale pixels


def crop_matrix(center: np.ndarray, scale: float, out_size: tuple[int, int],
                rotation: float = 0.0) -> np.ndarray:
    """2×3 affine matrix mapping original image px to crop px (out_size = (W, H)).

    The square of side 200·scale around ``center`` maps isotropically onto the shorter output side,
    centred; ``center`` lands on (W/2, H/2). Positive ``rotation`` turns the content counter-clockwise.
    """
    out_w, out_h = float(out_size[0]), float(out_size[1])
    side = BOX_UNIT * float(scale)
    if not side > 0:
        raise ValueError(f"crop_matrix: scale must be > 0, got {scale}")
    k = min(out_w, out_h) / side
    theta = math.radians(float(rotation))
    cos, sin = math.cos(theta) * k, math.sin(theta) * k
    cx, cy = float(center[0]), float(center[1])
    # p' = k·R·(p − c) + o with R = [[cos, sin], [−sin, cos]] (counter-clockwise in y-down images).
    return np.array([
        [cos, sin, out_w / 2.0 - cos * cx - sin * cy],
        [-sin, cos, out_h / 2.0 + sin * cx - cos * cy],
    ], dtype=np.float64)


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2×3 affine matrix (crop px → original px for a crop matrix).

    Used to map predictions back to image coordinates.
    """
    m = np.asarray(matrix, dtype=np.float64)
    a = m[:, :2]
    inv = np.linalg.inv(a)
    return np.concatenate([inv, -inv @ m[:, 2:3]], axis=1)


def warp_image(image: np.ndarray, matrix: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """Warp ``image`` with a 2×3 matrix into an out_size = (W, H) image (bilinear, black border).

    Thin wrapper so every crop in the project uses the same interpolation and border rule.
    """
    return cv2.warpAffine(image, np.asarray(matrix, dtype=np.float64), (int(out_size[0]), int(out_size[1])),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2×3 affine matrix to points of shape (..., 2); returns float64 of the same shape.

    Points and images warped with the same matrix stay aligned (same pixel-centre convention).
    """
    p = np.asarray(points, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    return p @ m[:, :2].T + m[:, 2]


def flip_horizontal(image: np.ndarray | None, joints: np.ndarray, visible: np.ndarray,
                    width: int) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Mirror an image (may be None) and its joints: x' = width − 1 − x, MPII left/right swapped.

    Swapping the pairs keeps "left wrist" meaning the person's left wrist after mirroring.
    """
    perm = flip_permutation()
    j = np.array(joints, dtype=np.float32, copy=True)[..., perm, :]
    j[..., 0] = (width - 1) - j[..., 0]
    v = np.array(visible, copy=True)[..., perm]
    img = None if image is None else np.ascontiguousarray(image[:, ::-1])
    return img, j, v


def flip_heatmaps(heatmaps: np.ndarray, input_width: int) -> np.ndarray:
    """Heatmaps (N, J, h, w) of a mirrored input mapped back to the unmirrored frame, joints swapped.

    Mirroring the input (x → W−1−x) mirrors heatmap px as x → (w − w/W) − x under the convention
    heatmap = input·w/W, not w−1−x: the plain array flip is off by 1 − w/W (0.75 px at stride 4), so
    the flipped maps are shifted by that amount with linear interpolation before flip-test averaging.
    """
    hm = np.asarray(heatmaps, dtype=np.float32)[:, flip_permutation(), :, ::-1]
    w = hm.shape[-1]
    delta = 1.0 - w / float(input_width)
    if delta <= 0:
        return np.ascontiguousarray(hm)
    shifted = np.concatenate([hm[..., :1], hm[..., :-1]], axis=-1)  # value at x−1 (edge repeated)
    return np.ascontiguousarray((1.0 - delta) * hm + delta * shifted, dtype=np.float32)


def gaussian_heatmaps(joints: np.ndarray, visible: np.ndarray, input_size: tuple[int, int],
                      heatmap_size: tuple[int, int], sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian targets (J, h, w) float32 with value 1 at each joint's heatmap position, and weights (J,).

    heatmap px = input px · w/W (sub-pixel centre, not rounded). A joint gets weight 0 and an all-zero
    map when it is not visible or its centre lies more than 3σ outside the heatmap (as the field does).
    """
    in_w, in_h = input_size
    hm_w, hm_h = heatmap_size
    pts = np.asarray(joints, dtype=np.float64).reshape(-1, 2)
    vis = np.asarray(visible).reshape(-1) > 0
    mu_x = pts[:, 0] * (hm_w / in_w)
    mu_y = pts[:, 1] * (hm_h / in_h)
    margin = 3.0 * sigma
    inside = ((mu_x >= -margin) & (mu_x <= hm_w - 1 + margin)
              & (mu_y >= -margin) & (mu_y <= hm_h - 1 + margin))
    weights = (vis & inside & np.isfinite(mu_x) & np.isfinite(mu_y)).astype(np.float32)
    xs = np.arange(hm_w, dtype=np.float64)
    ys = np.arange(hm_h, dtype=np.float64)
    mx = np.where(weights > 0, mu_x, 0.0)
    my = np.where(weights > 0, mu_y, 0.0)
    gx = np.exp(-((xs[None, :] - mx[:, None]) ** 2) / (2.0 * sigma ** 2))  # (J, w)
    gy = np.exp(-((ys[None, :] - my[:, None]) ** 2) / (2.0 * sigma ** 2))  # (J, h)
    maps = (gy[:, :, None] * gx[:, None, :]).astype(np.float32)
    maps *= weights[:, None, None]
    return maps, weights


def decode_heatmaps(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (N, J, h, w) → coords (N, J, 2) in heatmap px and maxvals (N, J).

    Official hourglass decoding: argmax, then a quarter-pixel shift toward the larger neighbour on
    each axis (no shift on the border or when the neighbours tie).
    """
    hm = np.asarray(heatmaps, dtype=np.float32)
    if hm.ndim != 4:
        raise ValueError(f"decode_heatmaps: expected (N, J, h, w), got shape {hm.shape}")
    n, j, h, w = hm.shape
    flat = hm.reshape(n, j, h * w)
    idx = flat.argmax(axis=2)
    maxvals = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
    x = (idx % w).astype(np.int64)
    y = (idx // w).astype(np.int64)
    coords = np.stack([x, y], axis=-1).astype(np.float32)

    def value(xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
        xx = np.clip(xx, 0, w - 1)
        yy = np.clip(yy, 0, h - 1)
        return np.take_along_axis(flat, (yy * w + xx)[..., None], axis=2)[..., 0]

    dx = np.sign(value(x + 1, y) - value(x - 1, y))
    dy = np.sign(value(x, y + 1) - value(x, y - 1))
    dx = np.where((x > 0) & (x < w - 1), dx, 0.0)
    dy = np.where((y > 0) & (y < h - 1), dy, 0.0)
    coords[..., 0] += 0.25 * dx
    coords[..., 1] += 0.25 * dy
    return coords, maxvals


def heatmap_to_input(coords: np.ndarray, heatmap_size: tuple[int, int],
                     input_size: tuple[int, int]) -> np.ndarray:
    """Map heatmap px to network-input px: input = heatmap · W/w (exact inverse of the target rule).

    Keeps decoding consistent with ``gaussian_heatmaps``.
    """
    c = np.asarray(coords, dtype=np.float64)
    factor = np.array([input_size[0] / heatmap_size[0], input_size[1] / heatmap_size[1]])
    return c * factor


def color_jitter(image: np.ndarray, rng: np.random.Generator, strength: float = 0.2) -> np.ndarray:
    """Random brightness, contrast and saturation, each a factor in [1 − strength, 1 + strength].

    Photometric augmentation on uint8 RGB (returns uint8); geometry is untouched.
    """
    img = np.asarray(image, dtype=np.float32)
    b, c, s = rng.uniform(1.0 - strength, 1.0 + strength, size=3)
    img = img * b
    gray = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    img = (img - gray.mean()) * c + gray.mean()
    gray = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    img = gray[..., None] + (img - gray[..., None]) * s
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


class AugmentParams(NamedTuple):
    """One draw of geometric augmentation: rotation (degrees), scale factor, horizontal flip."""

    rotation: float
    scale: float
    flip: bool


def augment_params(rng: np.random.Generator, rotation: float = 30.0,
                   scale: tuple[float, float] = (0.75, 1.25), flip_prob: float = 0.5,
                   rotation_prob: float = 0.6) -> AugmentParams:
    """Draw (rotation, scale factor, flip) in the MPII-port convention.

    The field (pytorch-pose, HRNet) rotates only 60 % of samples (none for the other 40 %); here the
    angle is uniform in ±rotation when applied. The scale factor is a normal around the middle of the
    range, std half its width, clipped to the range (the field's 1 + 0.25·N(0,1) clipped to
    [0.75, 1.25]); a factor > 1 zooms out (the crop covers more of the image).
    """
    lo, hi = float(scale[0]), float(scale[1])
    s = float(np.clip((lo + hi) / 2.0 + rng.standard_normal() * (hi - lo) / 2.0, lo, hi))
    r = float(rng.uniform(-rotation, rotation)) if rng.random() < rotation_prob else 0.0
    f = bool(rng.random() < flip_prob)
    return AugmentParams(rotation=r, scale=s, flip=f)
