"""The synthetic benchmark: determinism, split separation, label correctness and the preview grid."""
from __future__ import annotations

import dataclasses
import math
import hashlib

import cv2
import numpy as np
import pytest

from compress.data.preview import preview_grid, save_preview
from compress.data.synthetic import SyntheticConfig, SyntheticPose
from compress.data.synthetic_body import (
    JOINT_PARTS, PART_ID, SHIFT, _front_detail, build_body, place_body, sample_shape,
)
from compress.errors import HGCError

# A scene with the person alone and whole: no truncation, distractors, occluders, clutter or noise.
CLEAN = dataclasses.replace(SyntheticConfig(), truncation=0.0, shift=0.0, height=(0.45, 0.8), distractor=0.0,
                            occluder=0.0, clutter=0, blur=0.0, motion_blur=0.0, noise=(0.0, 0.0))
# sha256 of val[0] (image, joints, visible, occluded, head_size) with the default config and seed 0.
PINNED_VAL0 = "e8b536b601ec2204906e7bd30eb0b1dc40a5d00d82ef759e871a13802077e079"


def _digest(sample) -> str:
    h = hashlib.sha256(sample.image.tobytes())
    for a in (sample.joints, sample.visible, sample.occluded, np.float64(sample.head_size)):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_same_index_gives_identical_bytes_and_labels():
    a, b = SyntheticPose("val", seed=0), SyntheticPose("val", seed=0)
    for i in (0, 7, 1999):
        assert _digest(a[i]) == _digest(b.sample(i))
    assert _digest(a[3]) == _digest(a[3])  # no hidden state between calls


def test_seed_and_split_change_the_images():
    base = SyntheticPose("val", seed=0)[5].image
    for other in (SyntheticPose("val", seed=1), SyntheticPose("test", seed=0), SyntheticPose("train", seed=0)):
        assert not np.array_equal(base, other[5].image)


def test_val_is_pinned():
    """The val set must not drift silently: trained baselines and model cards depend on its exact bytes.

    If you changed the generator or SyntheticConfig defaults on purpose, re-evaluate the shipped
    baselines and update this digest.
    """
    assert _digest(SyntheticPose("val")[0]) == PINNED_VAL0


def test_lengths_and_errors():
    assert len(SyntheticPose("val")) == 2000 and len(SyntheticPose("test")) == 2000
    assert len(SyntheticPose("train")) == 2**31 - 1
    with pytest.raises(HGCError):
        SyntheticPose("dev")
    with pytest.raises(IndexError):
        SyntheticPose("val")[2000]
    with pytest.raises(HGCError):
        SyntheticConfig(occluder=1.5)


def test_sample_format():
    s = SyntheticPose("test", seed=3, size=96)[11]
    assert s.image.shape == (96, 96, 3) and s.image.dtype == np.uint8
    assert s.joints.shape == (16, 2) and s.joints.dtype == np.float32
    assert s.visible.dtype == np.float32 and s.occluded.dtype == np.float32
    assert np.allclose(s.center, (48, 48)) and s.scale == pytest.approx(96 / 200)
    assert s.name == "synthetic/test/3/11"


def test_joints_lie_on_their_own_drawn_parts():
    ds = SyntheticPose("val", seed=4, config=CLEAN)
    for i in range(12):
        r = ds.render(i, part_masks=True)
        s = r.sample
        assert s.visible.all(), "a clean, centred figure should be whole"
        for j, (x, y) in enumerate(np.floor(s.joints + 0.5).astype(int)):
            window = (slice(max(y - 1, 0), y + 2), slice(max(x - 1, 0), x + 2))
            own = [r.part_masks[p - 1][window].any() for p in JOINT_PARTS[j]]
            assert any(own), f"sample {i} joint {j} is not on its own drawn part"
            if not s.occluded[j]:
                assert np.isin(r.part_map[window], list(JOINT_PARTS[j])).any()


def test_visibility_is_inside_image_and_occlusion_only_among_visible():
    ds = SyntheticPose("val", seed=0, size=64)
    n_trunc = n_occ = 0
    for i in range(40):
        s = ds[i]
        inside = np.all((np.floor(s.joints + 0.5) >= 0) & (np.floor(s.joints + 0.5) < 64), axis=1)
        assert np.array_equal(s.visible > 0, inside)
        assert np.all(s.occluded <= s.visible)
        n_trunc += int((s.visible == 0).any())
        n_occ += int(s.occluded.sum())
    assert n_trunc > 0 and n_occ > 0, "the default benchmark should truncate and occlude some joints"


def test_head_size_matches_the_drawn_head():
    ds = SyntheticPose("val", seed=1, config=CLEAN)
    for i in range(8):
        r = ds.render(i, part_masks=True)
        area = int(r.part_masks[PART_ID["head"] - 1].sum())
        assert r.sample.head_size > 0 and area > 0
        # 0.6 × head-box diagonal vs the drawn head (ellipse + hair): about √area whatever the view.
        assert 0.65 < r.sample.head_size / np.sqrt(area) < 1.2


def test_preview_grid_and_png(tmp_path):
    ds = SyntheticPose("val", size=64)
    grid = preview_grid(ds, 5, cols=3, cell=48)
    assert grid.shape == (2 * 48 + 2, 3 * 48 + 4, 3) and grid.dtype == np.uint8
    (tmp_path / "sub").mkdir()
    path = save_preview(ds, 3, tmp_path / "sub" / "grid.png", cols=2, cell=32)
    img = cv2.imread(str(path))
    assert img is not None and img.shape == (2 * 32 + 2, 2 * 32 + 2, 3)
    assert [p.name for p in path.parent.iterdir()] == ["grid.png"]


@pytest.mark.parametrize("yaw, drawn", [(0.0, True), (math.pi, False), (math.pi / 2, False)])
def test_front_detail_only_on_the_chest_facing_the_camera(yaw, drawn):
    rng = np.random.default_rng(0)
    shape = sample_shape(rng)
    pose = {"legs_r": (0.0,) * 5, "legs_l": (0.0,) * 5, "arm_r": (0.2, 0.0, 0.0, 0.0), "arm_l": (0.2, 0.0, 0.0, 0.0),
            "spine": (0.0,) * 3, "head": (0.0,) * 3}
    points, normals, axes = build_body(shape, pose)
    fig = place_body(points, normals, axes, shape, yaw, 0.0, 4.0, 100.0, 0.0, np.array([64.0, 64.0]))
    detail = _front_detail(fig)
    assert bool(detail) == drawn
    if drawn:  # the V-neck hangs below the collar, between the shoulders, and inside the torso outline
        v_neck = detail[0][0] / (1 << SHIFT)
        shoulders_x = sorted(fig.joints[[12, 13], 0])
        assert shoulders_x[0] < v_neck[:, 0].min() and v_neck[:, 0].max() < shoulders_x[1]
        assert v_neck[1, 1] > v_neck[0, 1] and v_neck[1, 1] > v_neck[2, 1]
        # facing the camera, the person's right shoulder is on the image's left (MPII convention)
        assert fig.joints[12, 0] < fig.joints[13, 0]
