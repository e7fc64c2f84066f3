"""Crop/affine geometry, flips, heatmap targets and decoding (compress.data.transforms)."""
import numpy as np

from compress.data.skeleton import FLIP_PAIRS, flip_permutation
from compress.data.transforms import (augment_params, color_jitter, crop_matrix, decode_heatmaps,
                                      flip_heatmaps, flip_horizontal, gaussian_heatmaps, heatmap_to_input,
                                      invert_affine, transform_points, warp_image)


def test_crop_maps_box_and_round_trips():
    m = crop_matrix(np.array([300.0, 200.0]), 1.5, (64, 64))
    # centre → middle, the 300-px box side → the 64-px output side
    box = np.array([[300.0, 200.0], [150.0, 50.0], [450.0, 350.0]])
    assert np.allclose(transform_points(box, m), [[32, 32], [0, 0], [64, 64]])
    rot = crop_matrix(np.array([300.0, 200.0]), 1.5, (64, 48), rotation=25.0)
    pts = np.random.default_rng(0).uniform(0, 500, size=(20, 2))
    back = transform_points(transform_points(pts, rot), invert_affine(rot))
    assert np.allclose(back, pts, atol=1e-9)


def test_positive_rotation_is_counter_clockwise():
    m = crop_matrix(np.array([100.0, 100.0]), 1.0, (200, 200), rotation=90.0)
    # a point right of the centre ends up above it (y grows downward)
    assert np.allclose(transform_points(np.array([[150.0, 100.0]]), m), [[100.0, 50.0]], atol=1e-9)


def test_warped_image_and_points_stay_aligned():
    img = np.zeros((120, 160, 3), np.uint8)
    img[70, 40] = 255  # a bright pixel at x=40, y=70
    m = crop_matrix(np.array([80.0, 60.0]), 0.6, (120, 120), rotation=-20.0)
    out = warp_image(img, m, (120, 120))
    peak = transform_points(np.array([[40.0, 70.0]]), m)[0]
    y, x = np.unravel_index(out[..., 0].argmax(), out.shape[:2])
    assert out.shape == (120, 120, 3) and out.dtype == np.uint8
    assert abs(x - peak[0]) <= 1.0 and abs(y - peak[1]) <= 1.0


def test_flip_swaps_pairs_and_twice_is_identity():
    rng = np.random.default_rng(1)
    joints = rng.uniform(0, 99, size=(16, 2)).astype(np.float32)
    visible = (np.arange(16) % 3 != 0).astype(np.float32)
    img = rng.integers(0, 255, size=(50, 100, 3), dtype=np.uint8)
    f_img, f_j, f_v = flip_horizontal(img, joints, visible, width=100)
    for a, b in FLIP_PAIRS:
        assert f_j[a, 0] == 99 - joints[b, 0] and f_j[a, 1] == joints[b, 1] and f_v[a] == visible[b]
    assert f_j[9, 0] == 99 - joints[9, 0]  # head top stays head top
    assert np.array_equal(f_img[:, 0], img[:, 99])
    b_img, b_j, b_v = flip_horizontal(f_img, f_j, f_v, width=100)
    assert np.array_equal(b_img, img) and np.allclose(b_j, joints) and np.array_equal(b_v, visible)
    none_img, _, _ = flip_horizontal(None, joints, visible, width=100)
    assert none_img is None


def test_gaussian_peak_decodes_back_within_a_quarter_pixel():
    rng = np.random.default_rng(2)
    joints = rng.uniform(8, 248, size=(16, 2))
    maps, weights = gaussian_heatmaps(joints, np.ones(16), (256, 256), (64, 64), sigma=1.5)
    assert maps.shape == (16, 64, 64) and maps.dtype == np.float32 and np.all(weights == 1)
    coords, maxvals = decode_heatmaps(maps[None])
    err_hm = np.abs(coords[0] - joints * 64 / 256)
    assert err_hm.max() <= 0.25 + 1e-6 and np.all(maxvals > 0.8)
    back = heatmap_to_input(coords[0], (64, 64), (256, 256))
    assert np.abs(back - joints).max() <= 1.0 + 1e-5
    on_grid, _ = gaussian_heatmaps(np.array([[40.0, 20.0]]), np.ones(1), (256, 256), (64, 64), 2.0)
    assert on_grid[0, 5, 10] == 1.0


def test_gaussian_weights_zero_for_invisible_and_far_outside():
    joints = np.array([[100.0, 100.0], [100.0, 100.0], [-30.0, 50.0], [-5.0, 50.0]])
    maps, w = gaussian_heatmaps(joints, np.array([1, 0, 1, 1]), (128, 128), (32, 32), sigma=2.0)
    assert w.tolist() == [1.0, 0.0, 0.0, 1.0]  # -30 px → -7.5 hm px: beyond 3σ = 6; -5 px → -1.25: inside
    assert maps[1].max() == 0.0 and maps[2].max() == 0.0 and maps[3].max() > 0.0


def test_decode_hand_built_heatmap():
    hm = np.zeros((1, 3, 6, 7), np.float32)
    hm[0, 0, 3, 2] = 1.0
    hm[0, 0, 3, 3], hm[0, 0, 3, 1] = 0.5, 0.2  # right neighbour larger → +0.25 x
    hm[0, 0, 2, 2], hm[0, 0, 4, 2] = 0.4, 0.1  # upper neighbour larger → -0.25 y
    hm[0, 1, 0, 6] = 2.0  # corner: no neighbours on both sides → no shift
    hm[0, 2, 2, 3] = 1.0
    hm[0, 2, 2, 2] = hm[0, 2, 2, 4] = 0.3  # tie → no x shift
    coords, maxvals = decode_heatmaps(hm)
    assert np.allclose(coords[0], [[2.25, 2.75], [6.0, 0.0], [3.0, 2.0]])
    assert np.allclose(maxvals[0], [1.0, 2.0, 1.0])


def test_augment_params_and_color_jitter():
    rng = np.random.default_rng(3)
    draws = [augment_params(rng) for _ in range(2000)]
    rot = np.array([d.rotation for d in draws])
    sc = np.array([d.scale for d in draws])
    assert 0.35 < np.mean(rot == 0) < 0.45 and np.abs(rot).max() <= 30
    assert sc.min() >= 0.75 and sc.max() <= 1.25 and 0.45 < np.mean([d.flip for d in draws]) < 0.55
    a = augment_params(np.random.default_rng(7))
    assert a == augment_params(np.random.default_rng(7))
    img = np.random.default_rng(4).integers(0, 255, size=(8, 9, 3), dtype=np.uint8)
    assert np.array_equal(color_jitter(img, np.random.default_rng(5), strength=0.0), img)
    out = color_jitter(img, np.random.default_rng(5), strength=0.4)
    assert out.shape == img.shape and out.dtype == np.uint8 and not np.array_equal(out, img)


def test_flip_heatmaps_align_with_mirrored_joints():
    rng = np.random.default_rng(6)
    joints = rng.uniform(20, 230, size=(16, 2))
    vis = np.ones(16)
    _, mj, mv = flip_horizontal(None, joints, vis, width=256)
    mirrored_maps, _ = gaussian_heatmaps(mj, mv, (256, 256), (64, 64), sigma=2.0)  # what a net sees mirrored
    back = flip_heatmaps(mirrored_maps[None], input_width=256)
    coords, _ = decode_heatmaps(back)
    assert np.abs(heatmap_to_input(coords[0], (64, 64), (256, 256)) - joints).max() <= 1.25
    naive, _ = decode_heatmaps(mirrored_maps[None][:, flip_permutation(), :, ::-1])  # plain array flip
    naive_err = np.abs(heatmap_to_input(naive[0], (64, 64), (256, 256)) - joints)[:, 0]
    fixed_err = np.abs(heatmap_to_input(coords[0], (64, 64), (256, 256)) - joints)[:, 0]
    assert fixed_err.mean() < naive_err.mean()
