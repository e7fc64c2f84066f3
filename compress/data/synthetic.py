"""The procedural synthetic pose benchmark: deterministic MPII-format samples (compress/ARCHITECTURE.md §Benchmark).

Each sample is a pure function of ``(split, seed, index)``: the generator is seeded by a NumPy
``SeedSequence`` over integers, so the bytes do not depend on the machine or on Python's ``hash``.
Scene decisions use one stream and per-pixel noise another, and every geometric quantity is in
units of the image side, so ``size`` changes the resolution, not the scene. Pixel arithmetic is
kept bit-exact across CPUs: elementwise float ops, integer sums and OpenCV's bit-exact 8-bit paths.

A scene is: a textured background with clutter, up to two partial distractor figures (behind or in
front), the main person roughly centred, occluders, then blur, colour jitter and noise.

Labels (pixel centres at integer coordinates, as ``transforms``):
* ``joints``: where the figure was drawn, at OpenCV's 1/16 px drawing precision; joints outside the
  image keep their true coordinates;
* ``visible``: the joint's pixel lies inside the image (MPII does not annotate out-of-frame joints);
* ``occluded``: visible, but the last thing drawn on its pixel is another body part (not one the
  joint belongs to), a distractor figure or an occluder;
* ``head_size``: 0.6 × the diagonal of the head box, defined as head breadth × head length (upper
  neck to crown) enlarged by 10 %, at the head's depth; ≈ 0.81 × head length, independent of the
  in-plane rotation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from .sample import Sample
from .skeleton import NUM_JOINTS
from .synthetic_body import (
    JOINT_PARTS, OTHER_ID, PART_NAMES, SHIFT, Figure, build_body, capsule_polygons, draw_figure,
    fixed_point, place_body, random_color, sample_pose, sample_shape, skin_color,
)
from ..errors import HGCError

SPLIT_CODES: dict[str, int] = {"train": 1, "val": 2, "test": 3}
FIXED_LENGTH = 2000  # val and test
ENDLESS = 2**31 - 1  # train
_MAGIC = 0x48474353  # "HGCS": keeps these streams apart from other uses of SeedSequence


@dataclass(frozen=True)
class SyntheticConfig:
    """Difficulty knobs; the defaults define the benchmark (val/test bytes depend on every one of them).

    Lengths are fractions of the image side unless noted.
    """

    height: tuple[float, float] = (0.55, 1.05)  # person height (standing) / image side
    shift: float = 0.08  # max offset of the person's joint-box centre from the image centre
    truncation: float = 0.25  # probability of a large offset (0.15–0.35) that cuts the person at a border
    rotation: float = 30.0  # max in-plane rotation, degrees
    pitch: float = 25.0  # max tilt towards/away from the camera, degrees
    frontal: float = 0.6  # share of people turned towards the camera (yaw ~ N(0, frontal_spread)); the rest any way
    frontal_spread: float = 40.0  # degrees
    distance: tuple[float, float] = (2.5, 8.0)  # camera distance in body heights (perspective strength)
    free_pose: float = 0.25  # share of leg poses drawn anywhere within the joint limits
    distractor: float = 0.35  # probability of a partial second figure (a third with half of it)
    distractor_front: float = 0.3  # probability that a distractor stands in front of the person
    occluder: float = 0.3  # probability of an occluder in front (a second with half of it)
    occluder_size: tuple[float, float] = (0.12, 0.4)  # × person height
    clutter: int = 8  # max background shapes (including limb-like capsules)
    blur: float = 0.5  # probability of Gaussian blur
    blur_sigma: tuple[float, float] = (0.3, 1.3)  # px at 128
    motion_blur: float = 0.15  # probability of linear motion blur (3–7 px at 128)
    noise: tuple[float, float] = (0.0, 14.0)  # std of additive noise (0–255 scale)
    brightness: float = 0.3
    contrast: float = 0.35
    saturation: float = 0.5
    hue: float = 0.08  # max hue rotation, fraction of the colour circle

    def __post_init__(self) -> None:
        for name in ("truncation", "distractor", "distractor_front", "occluder", "blur", "motion_blur", "free_pose",
                     "frontal"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise HGCError(f"SyntheticConfig.{name}: a probability in [0, 1], got {getattr(self, name)!r}")
        for name in ("height", "distance", "occluder_size", "blur_sigma", "noise"):
            lo, hi = getattr(self, name)
            if not 0.0 <= lo <= hi:
                raise HGCError(f"SyntheticConfig.{name}: need 0 ≤ low ≤ high, got {(lo, hi)!r}")
        if self.distance[0] < 1.5 or self.clutter < 0:
            raise HGCError("SyntheticConfig: distance must start at ≥ 1.5 body heights and clutter be ≥ 0")


@dataclass
class SyntheticRender:
    """A sample with its drawing's part map (debugging and tests)."""

    sample: Sample
    part_map: np.ndarray  # H×W uint8: 0 background, k = the person's part PART_NAMES[k-1], 255 other
    part_masks: np.ndarray | None = field(default=None)  # (len(PART_NAMES), H, W) uint8 silhouettes


def _background(rng: np.random.Generator, size: int, grid: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """A varied background: gradient, stripes, smooth colour blobs, tiles or flat, plus fine texture."""
    c1, c2 = random_color(rng), random_color(rng)
    kind = int(rng.integers(5))
    if kind in (0, 1):
        a = rng.random() * 2 * math.pi
        t = grid[0] * np.float32(math.cos(a)) + grid[1] * np.float32(math.sin(a))
        if kind == 1:  # stripes: a triangle wave (no transcendental per-pixel functions)
            t = t * np.float32(rng.uniform(3, 16)) + np.float32(rng.random())
            t = np.abs(t - np.floor(t) - np.float32(0.5)) * np.float32(2.0)
            if rng.random() < 0.5:
                t = (t > 0.5).astype(np.float32)
        else:
            t = (t - t.min()) / np.float32(max(float(t.max() - t.min()), 1e-6))
        img = c1.astype(np.float32) + t[..., None] * (c2 - c1).astype(np.float32)
        img = np.clip(img + np.float32(0.5), 0, 255).astype(np.uint8)
    elif kind in (2, 3):
        g = int(rng.integers(2, 9))
        cells = rng.integers(0, 256, (g, g, 3)).astype(np.uint8)
        interp = cv2.INTER_LINEAR_EXACT if kind == 2 else cv2.INTER_NEAREST
        img = cv2.resize(cells, (size, size), interpolation=interp)
    else:
        img = np.empty((size, size, 3), np.uint8)
        img[:] = np.round(c1).astype(np.uint8)
    g, amp = int(rng.integers(8, 33)), int(rng.integers(0, 40))
    fine = cv2.resize(rng.integers(0, amp + 1, (g, g)).astype(np.uint8), (size, size),
                      interpolation=cv2.INTER_LINEAR_EXACT)
    return cv2.add(img, cv2.merge([fine] * 3))


def _clutter(img: np.ndarray, rng: np.random.Generator, count: int) -> None:
    """Random shapes on the background: rectangles, ellipses, lines, polygons and limb-like capsules."""
    size = img.shape[0]
    for _ in range(count):
        kind = int(rng.integers(5))
        color = (skin_color(rng) if rng.random() < 0.3 else random_color(rng)).clip(0, 255).tolist()
        c, r = rng.random(2) * size, rng.uniform(0.03, 0.25) * size
        if kind == 4:
            p1 = c + rng.normal(0, 1, 2) * r
            radii = rng.uniform(0.02, 0.06, 2) * size
            poly = capsule_polygons(c[None], p1[None], radii[:1], radii[1:])[0]
            cv2.fillConvexPoly(img, fixed_point(poly), color, cv2.LINE_AA, SHIFT)
        elif kind == 3:
            cv2.line(img, tuple(fixed_point(c)), tuple(fixed_point(c + rng.normal(0, 1, 2) * r)), color,
                     max(1, round(rng.uniform(0.5, 3.0) * size / 128)), cv2.LINE_AA, SHIFT)
        else:
            cv2.fillPoly(img, [fixed_point(_blob(rng, c, r, kind))], color, cv2.LINE_AA, SHIFT)


def _blob(rng: np.random.Generator, center: np.ndarray, radius: float, kind: int) -> np.ndarray:
    """Polygon of a rotated rectangle (0), an ellipse (1) or an irregular blob (2)."""
    a = rng.random() * 2 * math.pi
    if kind == 0:
        w, h = radius, radius * rng.uniform(0.15, 1.0)
        local = np.array([[-w, -h], [w, -h], [w, h], [-w, h]])
    elif kind == 1:
        t = np.linspace(0, 2 * math.pi, 16, endpoint=False)
        local = np.stack([np.cos(t) * radius, np.sin(t) * radius * rng.uniform(0.3, 1.0)], axis=1)
    else:
        n = int(rng.integers(5, 9))
        t = np.sort(rng.random(n)) * 2 * math.pi
        local = np.stack([np.cos(t), np.sin(t)], axis=1) * (radius * rng.uniform(0.4, 1.0, n))[:, None]
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return center + local @ rot.T


def _motion_blur(img: np.ndarray, length: int, angle: float) -> np.ndarray:
    """Average of ``length`` shifted copies along ``angle`` (integer arithmetic: bit-exact)."""
    pad = length
    padded = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    acc = np.zeros(img.shape, np.uint16)
    h, w = img.shape[:2]
    for k in range(length):
        t = k - (length - 1) / 2
        dx, dy = int(round(t * math.cos(angle))), int(round(t * math.sin(angle)))
        acc += padded[pad + dy:pad + dy + h, pad + dx:pad + dx + w]
    return ((acc + length // 2) // length).astype(np.uint8)


def _degrade(img: np.ndarray, rng: np.random.Generator, pixel_rng: np.random.Generator,
             cfg: SyntheticConfig) -> np.ndarray:
    """Blur, colour jitter (brightness, contrast, saturation, hue as one 3×3 map) and additive noise."""
    size = img.shape[0]
    unit = size / 128.0
    if rng.random() < cfg.blur:
        sigma = rng.uniform(*cfg.blur_sigma) * unit
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    if rng.random() < cfg.motion_blur:
        img = _motion_blur(img, max(2, int(round(rng.uniform(3, 7) * unit))), rng.random() * math.pi)
    b = 1 + rng.uniform(-cfg.brightness, cfg.brightness)
    c = 1 + rng.uniform(-cfg.contrast, cfg.contrast)
    s = max(0.0, 1 + rng.uniform(-cfg.saturation, cfg.saturation))
    h = rng.uniform(-cfg.hue, cfg.hue) * 2 * math.pi
    luma = np.array([0.299, 0.587, 0.114])
    k = np.full(3, 1 / math.sqrt(3))
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    hue = math.cos(h) * np.eye(3) + math.sin(h) * cross + (1 - math.cos(h)) * np.outer(k, k)
    sat = s * np.eye(3) + (1 - s) * np.outer(np.ones(3), luma)
    m = (b * c) * (sat @ hue)
    mean = int(img.sum(dtype=np.int64)) / img.size  # integer sum: exact
    offset = b * (1 - c) * mean + 0.5  # +0.5: round on the cast below
    sigma = rng.uniform(*cfg.noise) / 104.2  # the std of (u1 + u2 − 255) for bytes u1, u2
    n = size * size
    planes = np.ascontiguousarray(img.reshape(n, 3).T, dtype=np.float32)  # channel planes: fast and exact
    raw = np.frombuffer(pixel_rng.bytes(6 * n), np.uint8).reshape(2, 3, n)
    noise = raw[0].astype(np.int16)
    noise += raw[1]
    noise -= 255
    out = noise.astype(np.float32)
    out *= np.float32(sigma)
    out += np.float32(offset)
    for ch in range(3):
        for k in range(3):
            out[ch] += planes[k] * np.float32(m[ch, k])
    np.clip(out, 0, 255, out=out)
    return cv2.merge(list(out.astype(np.uint8).reshape(3, size, size)))


def _place(rng: np.random.Generator, height_px: float, cfg: SyntheticConfig, target: np.ndarray) -> Figure:
    """A random person (shape, pose, view) placed with its joint-box centre at ``target``."""
    shape = sample_shape(rng)
    points, normals, head_axes = build_body(shape, sample_pose(rng, cfg.free_pose))
    frontal = rng.random() < cfg.frontal
    yaw = math.radians(rng.normal(0.0, cfg.frontal_spread)) if frontal else rng.random() * 2 * math.pi
    tilt = math.radians(rng.uniform(-cfg.pitch, cfg.pitch))
    roll = math.radians(rng.uniform(-cfg.rotation, cfg.rotation))
    return place_body(points, normals, head_axes, shape, yaw, tilt, rng.uniform(*cfg.distance), height_px, roll, target)


class SyntheticPose:
    """Deterministic procedural pose data set in MPII format.

    ``val`` and ``test`` hold 2,000 fixed samples each; ``train`` is an endless stream (its length is
    2**31 − 1). Sample ``index`` of a split is the same bytes on any machine for the same
    ``(split, seed, index, size)``; the splits draw from disjoint seed streams.
    """

    # The scene already varies rotation, scale, placement and colour: training adds mirror images only.
    train_augment = {"rotation": 0.0, "scale": (1.0, 1.0), "flip": 0.5, "color": 0.0}

    def __init__(self, split: str = "val", seed: int = 0, size: int = 128,
                 config: SyntheticConfig | None = None) -> None:
        if split not in SPLIT_CODES:
            raise HGCError(f"synthetic: unknown split {split!r}; use one of {', '.join(SPLIT_CODES)}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise HGCError(f"synthetic: seed must be a non-negative integer, got {seed!r}")
        if not isinstance(size, (int, np.integer)) or size < 16:
            raise HGCError(f"synthetic: size must be an integer ≥ 16, got {size!r}")
        self.split, self.seed, self.size = split, int(seed), int(size)
        self.config = config or SyntheticConfig()
        axis = (np.arange(self.size, dtype=np.float32) + np.float32(0.5)) / np.float32(self.size)
        self._grid = (np.broadcast_to(axis[None, :], (self.size,) * 2), np.broadcast_to(axis[:, None], (self.size,) * 2))

    def __len__(self) -> int:
        return ENDLESS if self.split == "train" else FIXED_LENGTH

    def __getitem__(self, index: int) -> Sample:
        return self.sample(index)

    def sample(self, index: int) -> Sample:
        """Sample ``index`` (0 ≤ index < len(self))."""
        return self.render(index).sample

    def render(self, index: int, part_masks: bool = False) -> SyntheticRender:
        """Sample ``index`` with the part-id map of its drawing (and per-part silhouettes if asked)."""
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"synthetic:{self.split} index {index} out of range [0, {len(self)})")
        scene_seq, pixel_seq = np.random.SeedSequence([_MAGIC, SPLIT_CODES[self.split], self.seed, index]).spawn(2)
        rng, pixel_rng = np.random.Generator(np.random.PCG64(scene_seq)), np.random.Generator(np.random.PCG64(pixel_seq))
        masks = np.zeros((len(PART_NAMES), self.size, self.size), np.uint8) if part_masks else None
        image, ids, person = self._compose(rng, masks)
        image = _degrade(image, rng, pixel_rng, self.config)

        joints = (fixed_point(person.joints) / (1 << SHIFT)).astype(np.float32)  # as drawn
        pix = np.floor(joints + 0.5).astype(np.int64)
        visible = np.all((pix >= 0) & (pix < self.size), axis=1)
        occluded = np.zeros(NUM_JOINTS, bool)
        for j in np.flatnonzero(visible):
            top = int(ids[pix[j, 1], pix[j, 0]])
            occluded[j] = top != 0 and top not in JOINT_PARTS[j]
        centre = np.full(2, self.size / 2.0, np.float32)
        sample = Sample(image=image, joints=joints, visible=visible.astype(np.float32), center=centre,
                        scale=self.size / 200.0, head_size=person.head_size(),
                        name=f"synthetic/{self.split}/{self.seed}/{index}", occluded=occluded.astype(np.float32))
        return SyntheticRender(sample, ids, masks)

    def _compose(self, rng: np.random.Generator, masks: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, Figure]:
        """Background, clutter, distractors behind, the person, distractors in front, occluders."""
        cfg, size = self.config, self.size
        centre = np.full(2, size / 2.0)
        image = _background(rng, size, self._grid)
        _clutter(image, rng, int(rng.integers(0, cfg.clutter + 1)))
        height = rng.uniform(*cfg.height) * size
        offset = rng.uniform(-cfg.shift, cfg.shift, 2) * size
        if rng.random() < cfg.truncation:
            a = rng.random() * 2 * math.pi
            offset = np.array([math.cos(a), math.sin(a)]) * rng.uniform(0.15, 0.35) * size
        person = _place(rng, height, cfg, centre + offset)
        others = []
        for p in (cfg.distractor, cfg.distractor / 2):
            if rng.random() >= p:
                break
            a, d = rng.random() * 2 * math.pi, rng.uniform(0.45, 0.8) * size
            fig = _place(rng, height * rng.uniform(0.75, 1.3), cfg, centre + d * np.array([math.cos(a), math.sin(a)]))
            others.append((fig, rng.random() < cfg.distractor_front))

        ids = np.zeros((size, size), np.uint8)
        for fig, front in others:
            if not front:
                draw_figure(image, ids, fig, OTHER_ID)
        draw_figure(image, ids, person, masks=masks)
        for fig, front in others:
            if front:
                draw_figure(image, ids, fig, OTHER_ID)
        for p in (cfg.occluder, cfg.occluder / 2):
            if rng.random() >= p:
                break
            c = person.joints[int(rng.integers(NUM_JOINTS))] + rng.normal(0, 0.08, 2) * height
            poly = fixed_point(_blob(rng, c, rng.uniform(*cfg.occluder_size) * height / 2, int(rng.integers(3))))
            cv2.fillPoly(image, [poly], random_color(rng).tolist(), cv2.LINE_AA, SHIFT)
            cv2.fillPoly(ids, [poly], OTHER_ID, cv2.LINE_8, SHIFT)
        return image, ids, person
