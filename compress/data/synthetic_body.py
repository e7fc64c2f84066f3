"""A procedural human figure: proportions, anatomical 3D pose, projection and far-to-near drawing.

The synthetic benchmark builds each person in 3D so that left/right, foreshortening and
self-occlusion come from geometry rather than from colour codes. Frames:

* body frame: x = the person's left, y = up, z = the person's forward; lengths in body heights;
* camera frame: X = image right, Y = image down, Z = depth away from the camera.

Parts are drawn far to near (painter's algorithm on each part's mean depth) into the image and
into a part-id map; a joint is *occluded* when the part drawn last on its pixel is not one of the
joint's own parts. All randomness comes from the ``rng`` passed in, so a figure is a pure function
of its generator state.
"""
from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import cv2
import numpy as np

from .skeleton import NUM_JOINTS

PART_NAMES: tuple[str, ...] = (
    "torso_upper", "torso_lower", "neck", "head",
    "r_upper_arm", "r_forearm", "r_hand", "l_upper_arm", "l_forearm", "l_hand",
    "r_thigh", "r_shin", "r_foot", "l_thigh", "l_shin", "l_foot",
)
PART_ID: dict[str, int] = {name: i + 1 for i, name in enumerate(PART_NAMES)}  # 0 = background
OTHER_ID = 255  # distractor figures and occluders in the part-id map

_OWN = (
    ("r_shin", "r_foot"), ("r_thigh", "r_shin"), ("r_thigh", "torso_lower"),
    ("l_thigh", "torso_lower"), ("l_thigh", "l_shin"), ("l_shin", "l_foot"),
    ("torso_lower", "r_thigh", "l_thigh"), ("torso_upper", "neck", "r_upper_arm", "l_upper_arm"),
    ("neck", "head"), ("head",), ("r_forearm", "r_hand"), ("r_upper_arm", "r_forearm"),
    ("r_upper_arm", "torso_upper"), ("l_upper_arm", "torso_upper"), ("l_upper_arm", "l_forearm"),
    ("l_forearm", "l_hand"),
)
# Part ids a joint belongs to (MPII joint order): drawn over by any other part, the joint is occluded.
JOINT_PARTS: tuple[frozenset[int], ...] = tuple(frozenset(PART_ID[p] for p in own) for own in _OWN)

# Layout of the 3D point array: 16 joints, then extra geometry.
_HAND, _TOE, _HEAD_C = (16, 17), (18, 19), 20
_RING_N = 10
_RING0 = 21
_FACE0 = _RING0 + 3 * _RING_N  # r-eye, l-eye, nose, mouth-r, mouth-l
_HAIR0 = _FACE0 + 5
_FACE_DIRS = np.array([[-0.38, 0.12, 0.92], [0.38, 0.12, 0.92], [0.0, -0.2, 1.0],
                       [-0.22, -0.5, 0.84], [0.22, -0.5, 0.84]])
_FACE_DIRS /= np.linalg.norm(_FACE_DIRS, axis=1, keepdims=True)
_GOLDEN = math.pi * (3.0 - math.sqrt(5.0))
_HAIR_DIRS = np.array([[math.cos(_GOLDEN * i) * math.sqrt(1 - y * y), y, math.sin(_GOLDEN * i) * math.sqrt(1 - y * y)]
                       for i, y in enumerate(np.linspace(0.98, -0.98, 64))])
_NUM_POINTS = _HAIR0 + len(_HAIR_DIRS)
_CIRCLE = np.linspace(0.0, 2 * math.pi, 20, endpoint=False)
_UNIT_CIRCLE = np.stack([np.cos(_CIRCLE), np.sin(_CIRCLE)], axis=1)
SHIFT = 4  # OpenCV fixed-point bits: all drawing happens at 1/16 px


def _rx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def _unit(v: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    n = math.sqrt(float(v @ v))
    return v / n if n > 1e-6 else fallback


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # np.cross is slow on 3-vectors
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _turn(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotate ``v`` about the unit ``axis`` by ``angle`` (Rodrigues)."""
    c, s = math.cos(angle), math.sin(angle)
    return v * c + _cross(axis, v) * s + axis * float(axis @ v) * (1 - c)


def random_color(rng: np.random.Generator, sat: tuple[float, float] = (0.0, 1.0),
                 val: tuple[float, float] = (0.1, 1.0)) -> np.ndarray:
    """An RGB colour (floats 0–255) with uniform hue and the given saturation/value ranges."""
    h, s, v = rng.random(), rng.uniform(*sat), rng.uniform(*val)
    return np.array(colorsys.hsv_to_rgb(h, s, v)) * 255.0


def skin_color(rng: np.random.Generator) -> np.ndarray:
    """A skin tone between dark and light (RGB floats)."""
    t = rng.random()
    return np.array([70.0, 45.0, 30.0]) * (1 - t) + np.array([240.0, 200.0, 175.0]) * t + rng.normal(0, 8, 3)


_HAIR_COLORS = np.array([[25, 20, 18], [60, 40, 25], [110, 75, 40], [190, 160, 100], [140, 60, 30], [160, 160, 160]],
                        dtype=np.float64)


@dataclass
class BodyShape:
    """Per-person proportions (in body heights) and appearance."""

    length: dict[str, float]
    girth: float
    colors: dict[str, np.ndarray]
    hair: tuple[float, float, float]  # hairline height, how low hair reaches at the back, volume (0 = bald)


def sample_shape(rng: np.random.Generator) -> BodyShape:
    """Random proportions (±10 % bone lengths, ±20 % girth) and clothing/skin/hair colours."""
    limb, trunk = rng.uniform(0.92, 1.08), rng.uniform(0.92, 1.08)
    base = {"spine": 0.27 * trunk, "neck": 0.045, "head_len": 0.13, "head_w": 0.092, "shoulder": 0.115,
            "hip": 0.085, "upper_arm": 0.175 * limb, "forearm": 0.15 * limb, "hand": 0.09,
            "thigh": 0.245 * limb, "shin": 0.245 * limb, "foot": 0.13}
    length = {k: v * rng.uniform(0.95, 1.05) for k, v in base.items()}
    skin, shirt, trousers = skin_color(rng), random_color(rng), random_color(rng, val=(0.1, 0.8))
    colors = {"skin": skin, "shirt": shirt, "trousers": trousers,
              "shoes": random_color(rng, sat=(0.0, 0.6), val=(0.05, 0.6)),
              "hair": _HAIR_COLORS[int(rng.integers(len(_HAIR_COLORS)))] * rng.uniform(0.8, 1.2)}
    bright = float(shirt @ (0.299, 0.587, 0.114)) > 110.0  # the front detail contrasts with the shirt
    colors["accent"] = random_color(rng, sat=(0.4, 1.0), val=(0.05, 0.3) if bright else (0.8, 1.0))
    colors["upper_arm"] = skin if rng.random() < 0.12 else shirt
    colors["forearm"] = colors["upper_arm"] if rng.random() < 0.5 else skin  # long or short sleeves
    colors["shin"] = trousers if rng.random() < 0.7 else skin
    hair = (rng.uniform(0.1, 0.5), rng.uniform(-1.0, -0.55), 0.0 if rng.random() < 0.05 else rng.uniform(1.04, 1.15))
    return BodyShape(length, rng.uniform(0.8, 1.2), colors, hair)


def _deg(rng: np.random.Generator, lo: float, hi: float) -> float:
    return math.radians(rng.uniform(lo, hi))


def sample_pose(rng: np.random.Generator, free_prob: float) -> dict[str, tuple[float, ...]]:
    """Joint angles (radians) within anatomical limits from a mixture of everyday/sport poses."""
    legs = []
    mode = rng.choice(5, p=[0.3 * (1 - free_prob), 0.35 * (1 - free_prob), 0.15 * (1 - free_prob),
                            0.2 * (1 - free_prob), free_prob])
    for side in range(2):
        lead = side == 0
        if mode == 0:  # stand
            hip, knee = (rng.uniform(-10, 20), rng.uniform(0, 25))
        elif mode == 1:  # walk / run
            hip, knee = (rng.uniform(10, 70), rng.uniform(0, 100)) if lead else (rng.uniform(-30, 10), rng.uniform(5, 120))
        elif mode == 2:  # sit / crouch
            hip, knee = rng.uniform(60, 115), rng.uniform(60, 150)
        elif mode == 3:  # lunge / kneel / kick
            hip, knee = (rng.uniform(30, 110), rng.uniform(0, 110)) if lead else (rng.uniform(-25, 25), rng.uniform(30, 150))
        else:  # anything within the limits
            hip, knee = rng.uniform(-25, 120), rng.uniform(0, 150)
        abduct = rng.uniform(-8, 45) if mode == 4 else rng.uniform(-5, 20)
        legs.append(tuple(math.radians(a) for a in (hip, abduct, rng.uniform(-20, 20), knee, rng.uniform(-15, 40))))
    if rng.random() < 0.5:
        legs.reverse()
    arms = []
    for _ in range(2):
        u = rng.random()
        if u < 0.3:  # hanging
            theta, phi, elbow = rng.uniform(0, 35), rng.uniform(-30, 90), rng.uniform(0, 70)
        elif u < 0.45:  # raised
            theta, phi, elbow = rng.uniform(110, 175), rng.uniform(-20, 120), rng.uniform(0, 90)
        else:  # anywhere within the limits
            theta, phi, elbow = rng.uniform(0, 170), rng.uniform(-40, 135), rng.uniform(0, 150)
        arms.append(tuple(math.radians(a) for a in (theta, phi, rng.uniform(-70, 60), elbow)))
    lean = rng.uniform(35, 90) if rng.random() < 0.1 else float(np.clip(rng.normal(8, 12), -25, 50))
    spine = (math.radians(lean), _deg(rng, -20, 20), _deg(rng, -35, 35))
    head = (_deg(rng, -35, 40), _deg(rng, -20, 20), _deg(rng, -60, 60))
    return {"legs_r": legs[0], "legs_l": legs[1], "arm_r": arms[0], "arm_l": arms[1], "spine": spine, "head": head}


def _ring(center: np.ndarray, rot: np.ndarray, half_w: float, half_d: float) -> np.ndarray:
    local = np.stack([np.cos(_CIRCLE[::2]) * half_w, np.zeros(_RING_N), np.sin(_CIRCLE[::2]) * half_d], axis=1)
    return center + local @ rot.T


def build_body(shape: BodyShape, pose: dict[str, tuple[float, ...]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward kinematics: (points (N,3), face+hair normals (M,3), head rotation), body frame."""
    L, g = shape.length, shape.girth
    p = np.zeros((_NUM_POINTS, 3))
    flex, lat, twist = pose["spine"]
    r_spine = _ry(twist) @ _rx(flex) @ _rz(lat)
    r_mid = _ry(twist / 2) @ _rx(flex / 2) @ _rz(lat / 2)
    p[6] = (0.0, 0.0, 0.0)
    p[7] = r_spine @ (0.0, L["spine"], 0.0)
    hflex, hlat, hturn = pose["head"]
    r_head = r_spine @ _ry(hturn) @ _rx(hflex) @ _rz(hlat)
    p[8] = p[7] + r_spine @ _rx(hflex / 2) @ (0.0, L["neck"], 0.005)
    head_up = r_head[:, 1]
    p[_HEAD_C] = p[8] + head_up * (L["head_len"] / 2)
    p[9] = p[_HEAD_C] + head_up * (0.97 * L["head_len"] / 2)
    fwd, down = np.array([0.0, 0.0, 1.0]), np.array([0.0, -1.0, 0.0])
    for side, (hip_j, knee_j, ankle_j, sh_j, el_j, wr_j, hand_i, toe_i) in (
            (-1, (2, 1, 0, 12, 11, 10, _HAND[0], _TOE[0])), (1, (3, 4, 5, 13, 14, 15, _HAND[1], _TOE[1]))):
        key = "r" if side < 0 else "l"
        hip, abduct, rot, knee, foot = pose["legs_" + key]
        p[hip_j] = (side * L["hip"], -0.03, 0.0)
        thigh = np.array([side * math.sin(abduct), -math.cos(hip) * math.cos(abduct), math.sin(hip) * math.cos(abduct)])
        p[knee_j] = p[hip_j] + L["thigh"] * thigh
        back = _turn(_unit(_cross((1.0, 0.0, 0.0), thigh), -fwd), thigh, side * rot)
        shin = math.cos(knee) * thigh + math.sin(knee) * back
        p[ankle_j] = p[knee_j] + L["shin"] * shin
        ahead = _turn(_unit(_cross(shin, (1.0, 0.0, 0.0)), fwd), shin, side * (rot - 0.2))
        p[toe_i] = p[ankle_j] + L["foot"] * _unit(math.cos(foot) * ahead + math.sin(foot) * shin, ahead)
        theta, phi, spin, elbow = pose["arm_" + key]
        p[sh_j] = p[7] + r_spine @ (side * L["shoulder"], -0.035, -0.01)
        upper = r_spine @ (side * math.sin(theta) * math.cos(phi), -math.cos(theta), math.sin(theta) * math.sin(phi))
        p[el_j] = p[sh_j] + L["upper_arm"] * upper
        ref = r_spine @ fwd
        bend = _unit(ref - (ref @ upper) * upper, r_spine @ -down)
        bend = _turn(bend, upper, side * spin)
        fore = math.cos(elbow) * upper + math.sin(elbow) * bend
        p[wr_j] = p[el_j] + L["forearm"] * fore
        p[hand_i] = p[wr_j] + L["hand"] * fore
    rings = ((p[7] + r_spine @ (0, -0.005, 0), r_spine, 0.95 * L["shoulder"], 0.055 * g),  # chest, waist, hips
             (r_mid @ (0, L["spine"] * 0.45, 0), r_mid, 0.085 * g, 0.055 * g),
             (np.array([0.0, -0.035, 0.0]), np.eye(3), (L["hip"] + 0.04) * g, 0.065 * g))
    for k, (c, r, half_w, half_d) in enumerate(rings):
        p[_RING0 + k * _RING_N:_RING0 + (k + 1) * _RING_N] = _ring(c, r, half_w, half_d)
    radii = np.array([L["head_w"] / 2, L["head_len"] / 2, 0.5 * L["head_len"]])
    dirs = np.concatenate([_FACE_DIRS, _HAIR_DIRS])
    scale = np.concatenate([np.ones(len(_FACE_DIRS)), np.full(len(_HAIR_DIRS), max(shape.hair[2], 1.0))])
    p[_FACE0:] = p[_HEAD_C] + (dirs * radii * scale[:, None]) @ r_head.T
    normals = (dirs / radii) @ r_head.T
    return p, normals, r_head @ np.diag(radii)


@dataclass
class Figure:
    """A figure placed in the image: 2D points, px-per-body-height at each point, depth and shape."""

    xy: np.ndarray  # (N, 2) image px
    px: np.ndarray  # (N,) pixels per body height at each point (perspective)
    depth: np.ndarray  # (N,) camera Z
    facing: np.ndarray  # (M,) cosine between face/hair normals and the view ray (< 0 faces the camera)
    head_axes: np.ndarray  # (3, 2) image-plane images of the head ellipsoid's three semi-axes, px
    shape: BodyShape

    @property
    def joints(self) -> np.ndarray:
        return self.xy[:NUM_JOINTS]

    def head_size(self) -> float:
        """0.6 × diagonal of the head box (head breadth × head length, +10 % margin) at the head's depth."""
        L = self.shape.length
        return 0.6 * 1.1 * math.hypot(L["head_w"], L["head_len"]) * float(self.px[_HEAD_C])


def place_body(points: np.ndarray, normals: np.ndarray, head_axes: np.ndarray, shape: BodyShape,
               yaw: float, pitch: float, distance: float, height_px: float, roll: float,
               target: np.ndarray) -> Figure:
    """Turn (yaw), tilt (pitch), project with perspective at ``distance`` body heights, rotate in-plane
    by ``roll`` (radians) and translate so the joints' bounding-box centre lands on ``target``."""
    to_cam = _rx(pitch) @ np.diag([1.0, -1.0, -1.0]) @ _ry(yaw)
    centre = points[:NUM_JOINTS].mean(axis=0)
    cam = (points - centre) @ to_cam.T + (0.0, 0.0, distance)
    focal = height_px * distance
    px = focal / cam[:, 2]
    c, s = math.cos(roll), math.sin(roll)
    r2 = np.array([[c, -s], [s, c]])
    xy = (cam[:, :2] * px[:, None]) @ r2.T
    joints = xy[:NUM_JOINTS]
    xy += target - (joints.min(axis=0) + joints.max(axis=0)) / 2
    n_cam = normals @ to_cam.T
    rays = cam[_FACE0:]
    facing = np.sum(n_cam * rays, axis=1) / (np.linalg.norm(n_cam, axis=1) * np.linalg.norm(rays, axis=1))
    axes = r2 @ (to_cam @ head_axes)[:2] * px[_HEAD_C]
    return Figure(xy, px, cam[:, 2], facing, axes.T, shape)


def capsule_polygons(p0: np.ndarray, p1: np.ndarray, r0: np.ndarray, r1: np.ndarray, k: int = 7) -> np.ndarray:
    """Outlines (C, 2k, 2) of tapered capsules: the convex hull of circles (p0, r0) and (p1, r1)."""
    d = p1 - p0
    length = np.maximum(np.linalg.norm(d, axis=1), 1e-6)
    base = np.arctan2(d[:, 1], d[:, 0])
    alpha = np.arcsin(np.clip((r0 - r1) / length, -1.0, 1.0))
    t = np.linspace(0.0, 1.0, k)
    half = math.pi / 2 - alpha
    a0 = base[:, None] + half[:, None] + t * (2 * math.pi - 2 * half)[:, None]
    a1 = base[:, None] - half[:, None] + t * (2 * half)[:, None]
    ring0 = p0[:, None] + r0[:, None, None] * np.stack([np.cos(a0), np.sin(a0)], axis=-1)
    ring1 = p1[:, None] + r1[:, None, None] * np.stack([np.cos(a1), np.sin(a1)], axis=-1)
    return np.concatenate([ring0, ring1], axis=1)


# Capsules: part, from point, to point, radius at each end (body heights, before girth).
_CAPSULES = (
    ("neck", 7, 8, 0.034, 0.03),
    ("r_upper_arm", 12, 11, 0.04, 0.033), ("l_upper_arm", 13, 14, 0.04, 0.033),
    ("r_forearm", 11, 10, 0.033, 0.024), ("l_forearm", 14, 15, 0.033, 0.024),
    ("r_hand", 10, _HAND[0], 0.027, 0.022), ("l_hand", 15, _HAND[1], 0.027, 0.022),
    ("r_thigh", 2, 1, 0.068, 0.045), ("l_thigh", 3, 4, 0.068, 0.045),
    ("r_shin", 1, 0, 0.045, 0.03), ("l_shin", 4, 5, 0.045, 0.03),
    ("r_foot", 0, _TOE[0], 0.032, 0.025), ("l_foot", 5, _TOE[1], 0.032, 0.025),
)
_CAP_IDX = np.array([(c[1], c[2]) for c in _CAPSULES])
_CAP_RADII = np.array([(c[3], c[4]) for c in _CAPSULES])
_CAP_IS_HAND = np.array([c[0].endswith("hand") for c in _CAPSULES])
_CAP_COLOR = {"neck": "skin", "upper_arm": "upper_arm", "forearm": "forearm", "hand": "skin",
              "thigh": "trousers", "shin": "shin", "foot": "shoes"}


def fixed_point(points: np.ndarray) -> np.ndarray:
    """Pixel coordinates as OpenCV fixed-point integers (pass ``SHIFT`` to the drawing call)."""
    return np.round(np.asarray(points) * (1 << SHIFT)).astype(np.int32)


def _head_ellipse(fig: Figure) -> np.ndarray:
    """The head ellipsoid's projected outline (orthographic at the head's depth)."""
    (a, b), (_, c) = fig.head_axes.T @ fig.head_axes  # 2×2 covariance of the projected ellipsoid
    mid, rad = (a + c) / 2, math.hypot((a - c) / 2, b)  # closed-form eigen-decomposition (no LAPACK)
    t = 0.5 * math.atan2(2 * b, a - c)
    major, minor = math.sqrt(mid + rad), math.sqrt(max(mid - rad, 1e-9))
    axes = np.array([[major * math.cos(t), major * math.sin(t)], [-minor * math.sin(t), minor * math.cos(t)]])
    return fig.xy[_HEAD_C] + _UNIT_CIRCLE @ axes


def figure_parts(fig: Figure) -> list[tuple[int, float, list[tuple[np.ndarray, np.ndarray]]]]:
    """Drawable parts far to near: (part id, mean depth, [(fixed-point polygon, RGB colour), ...])."""
    col, g, xy, px, z = fig.shape.colors, fig.shape.girth, fig.xy, fig.px, fig.depth
    i0, i1 = _CAP_IDX[:, 0], _CAP_IDX[:, 1]
    radii = _CAP_RADII * np.where(_CAP_IS_HAND, 1.0, g)[:, None]
    polys = fixed_point(capsule_polygons(xy[i0], xy[i1], radii[:, 0] * px[i0], radii[:, 1] * px[i1]))
    parts = []
    for c, (name, a, b, _, _) in enumerate(_CAPSULES):
        parts.append((PART_ID[name], (z[a] + z[b]) / 2, [(polys[c], col[_CAP_COLOR[name.split("_", 1)[-1]]])]))
    for pid, lo, color in ((PART_ID["torso_upper"], 0, "shirt"), (PART_ID["torso_lower"], 1, "trousers")):
        sl = slice(_RING0 + lo * _RING_N, _RING0 + (lo + 2) * _RING_N)
        hull = fixed_point(cv2.convexHull(xy[sl].astype(np.float32))[:, 0].astype(np.float64))
        parts.append((pid, float(z[sl].mean()), [(hull, col[color])] + (_front_detail(fig) if lo == 0 else [])))
    head = [(fixed_point(_head_ellipse(fig)), col["skin"])]
    if fig.shape.hair[2] > 0:  # hair: the convex hull of the hair points that face the camera
        d, (top, back) = _HAIR_DIRS, fig.shape.hair[:2]  # hairline in front, lowest reach behind
        in_hair = (d[:, 1] > top) | ((d[:, 2] < -0.15) & (d[:, 1] > back)) | ((d[:, 2] < 0.35) & (d[:, 1] > 0.0))
        pts = xy[_HAIR0:][in_hair & (fig.facing[5:] < 0.05)]
        if len(pts) >= 3:
            head.append((fixed_point(cv2.convexHull(pts.astype(np.float32))[:, 0].astype(np.float64)), col["hair"]))
    parts.append((PART_ID["head"], float(z[_HEAD_C]), head))
    # The neck is drawn over the chest and the head over the neck, whatever their mean depths.
    depth = {pid: d for pid, d, _ in parts}
    depth[PART_ID["neck"]] = min(depth[PART_ID["neck"]], depth[PART_ID["torso_upper"]] - 1e-3)
    depth[PART_ID["head"]] = min(depth[PART_ID["head"]], depth[PART_ID["neck"]] - 1e-3)
    parts = sorted(((pid, depth[pid], layers) for pid, _, layers in parts), key=lambda part: -part[1])
    return parts


def _front_detail(fig: Figure) -> list[tuple[np.ndarray, np.ndarray]]:
    """A V-neck and placket on the shirt's front, drawn only when the chest faces the camera.

    With left/right-symmetric clothing this and the face are what tell front from back views.
    """
    chest, waist = _RING0, _RING0 + _RING_N
    front, back = [chest + 2, chest + 3], [chest + 7, chest + 8]  # ring points at 72°/108° and 252°/288°
    half_d = float(np.ptp(fig.depth[chest:chest + _RING_N])) / 2 or 1e-6
    if (fig.depth[back].mean() - fig.depth[front].mean()) / (2 * half_d) < 0.3:
        return []
    xy = fig.xy
    top = xy[front].mean(axis=0)
    down = xy[[waist + 2, waist + 3]].mean(axis=0) - top
    ends = top + 1.6 * (xy[front] - top)
    v_neck = np.array([ends[0], top + 0.4 * down, ends[1]])
    side = (ends[1] - ends[0]) * 0.12
    placket = np.array([top + 0.35 * down - side, top + 0.35 * down + side, top + 0.95 * down + side,
                        top + 0.95 * down - side])
    accent = fig.shape.colors["accent"]
    return [(fixed_point(v_neck), accent), (fixed_point(placket), accent)]


def draw_figure(image: np.ndarray, ids: np.ndarray, fig: Figure, id_value: int | None = None,
                masks: np.ndarray | None = None, shade: float = 0.25) -> None:
    """Draw ``fig`` far to near into ``image`` (RGB uint8) and ``ids`` (part ids, or ``id_value`` for all).

    ``masks`` (len(PART_NAMES), H, W) uint8, if given, receives each part's own silhouette.
    ``shade`` darkens parts by their depth behind the figure's centre (a cheap lighting cue).
    """
    z0 = float(fig.depth[:NUM_JOINTS].mean())
    for pid, depth, layers in figure_parts(fig):
        light = 1.0 - shade * min(max((depth - z0) / 0.25, -1.0), 1.0)
        for pts, color in layers:
            fill = [min(max(float(v) * light, 0.0), 255.0) for v in color]
            cv2.fillConvexPoly(image, pts, fill, cv2.LINE_AA, SHIFT)
            cv2.polylines(image, [pts], True, [v * 0.55 for v in fill], 1, cv2.LINE_AA, SHIFT)
            cv2.fillConvexPoly(ids, pts, int(id_value or pid), cv2.LINE_8, SHIFT)
            if masks is not None:
                cv2.fillConvexPoly(masks[pid - 1], pts, 1, cv2.LINE_8, SHIFT)
        if pid == PART_ID["head"]:
            _draw_face(image, fig)


def _draw_face(image: np.ndarray, fig: Figure) -> None:
    """Eyes, nose and mouth where they face the camera: the front/back cue."""
    front = fig.facing[:5] < -0.25
    if not front.any():
        return
    xy, unit = fig.xy[_FACE0:_FACE0 + 5], float(fig.px[_HEAD_C]) * fig.shape.length["head_len"]
    skin = fig.shape.colors["skin"]
    dark = (skin * 0.25).tolist()
    r = max(int(round(unit * 0.1 * (1 << SHIFT))), 10)
    for i in (0, 1):
        if front[i]:
            cv2.circle(image, tuple(fixed_point(xy[i])), r, dark, -1, cv2.LINE_AA, SHIFT)
    if front[2]:
        cv2.circle(image, tuple(fixed_point(xy[2])), r, (skin * 0.7).tolist(), -1, cv2.LINE_AA, SHIFT)
    if front[3] and front[4]:
        cv2.line(image, tuple(fixed_point(xy[3])), tuple(fixed_point(xy[4])), (skin * 0.35).tolist(),
                 max(1, int(round(unit * 0.08))), cv2.LINE_AA, SHIFT)
