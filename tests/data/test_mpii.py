"""MPII sources on the real annotation file with images the tests write themselves."""
import json
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import scipy.io

from compress.data.mpii import MPIIH5Source, MPIIJsonSource, open_source
from compress.errors import HGCError

MPII = Path(__file__).resolve().parents[2] / ".." / "shared" / "mpii"
VALID = MPII / "valid.h5"


@pytest.fixture(scope="module")
def valid_arrays() -> dict:
    with h5py.File(VALID, "r") as f:
        return {k: f[k][()] for k in f}


def _write_image(folder: Path, name: str, w: int = 40, h: int = 30, rgb=(200, 40, 10)) -> None:
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = rgb[::-1]  # OpenCV writes BGR
    assert cv2.imwrite(str(folder / name), img)


def test_real_valid_h5_matches_the_official_ground_truth(tmp_path, valid_arrays):
    src = MPIIH5Source(str(VALID), str(tmp_path))
    assert len(src) == 2958 and src.skipped == []
    joints, visible, head = src.ground_truth()
    assert joints.shape == (2958, 16, 2) and visible.shape == (2958, 16) and head.shape == (2958,)
    gt = scipy.io.loadmat(str(MPII / "detections_our_format.mat"))
    assert np.array_equal(visible, 1 - gt["jnt_missing"].T)  # annotated, not MPII's is-visible flag
    assert visible.sum() == 2958 * 16 - 3088
    boxes = gt["headboxes_src"]
    assert np.allclose(head, 0.6 * np.linalg.norm(boxes[1] - boxes[0], axis=0), rtol=1e-6)
    part = valid_arrays["part"]
    ann = visible > 0
    assert np.array_equal(joints[ann], (part - 1)[ann].astype(np.float32))  # 1-based → 0-based
    gt_ann = gt["pos_gt_src"].transpose(2, 0, 1)[ann]
    assert np.mean(np.abs(joints[ann] + 1 - gt_ann).max(-1) < 1.0) > 0.999


def test_h5_samples_load_with_correct_fields(tmp_path, valid_arrays):
    names = [n.decode() for n in valid_arrays["imgname"][:3]]
    for name in names:
        _write_image(tmp_path, name)
    src = MPIIH5Source(str(VALID), str(tmp_path))
    s = src[2]
    p, c, sc = valid_arrays["part"][2], valid_arrays["center"][2], valid_arrays["scale"][2]
    assert s.name == names[2] and s.image.shape == (30, 40, 3)
    assert np.abs(s.image[0, 0].astype(int) - (200, 40, 10)).max() <= 3  # RGB order
    assert s.visible.tolist() == [0, 1, 1, 1, 1, 0] + [1] * 10
    assert np.allclose(s.joints[1], p[1] - 1) and np.allclose(s.joints[0], -1)
    assert s.occluded.tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0]  # annotated, h5 visible=0
    assert np.allclose(s.center, [c[0] - 1, c[1] + 15 * sc - 1]) and np.isclose(s.scale, 1.25 * sc)
    assert np.isclose(s.head_size, valid_arrays["normalize"][2])


def test_missing_and_unreadable_images(tmp_path, valid_arrays):
    names = [n.decode() for n in valid_arrays["imgname"][:3]]
    for name in names[:2]:
        _write_image(tmp_path, name)
    (tmp_path / names[2]).write_bytes(b"not a jpeg")
    src = MPIIH5Source(str(VALID), str(tmp_path))
    with pytest.raises(HGCError, match=rf"{valid_arrays['imgname'][5].decode()}.*missing.*record 5"):
        src[5]
    with pytest.raises(HGCError, match=rf"{names[2]}.*unreadable.*record 2"):
        src[2]
    lenient = MPIIH5Source(str(VALID), str(tmp_path), skip_bad=True)
    assert len(lenient) == 3 and len(lenient.skipped) == 2955  # decided at construction
    assert lenient[2].name == names[0]  # unreadable at read time → skipped, moves on (wraps around)
    assert len(lenient.skipped) == 2956 and lenient.skipped[-1].index == 2


def _small_h5(path: Path, arrays: dict, drop: str | None = None, **override) -> None:
    with h5py.File(path, "w") as f:
        for key in ("center", "scale", "part", "visible", "normalize", "imgname"):
            if key != drop:
                f[key] = override.get(key, arrays[key][:4])


def test_h5_missing_field_wrong_shape_and_not_h5(tmp_path, valid_arrays):
    _small_h5(tmp_path / "a.h5", valid_arrays, drop="normalize")
    with pytest.raises(HGCError, match=r"a\.h5.*'normalize'"):
        MPIIH5Source(str(tmp_path / "a.h5"))
    _small_h5(tmp_path / "b.h5", valid_arrays, part=valid_arrays["part"][:4, :15])
    with pytest.raises(HGCError, match=r"b\.h5.*'part'.*shape"):
        MPIIH5Source(str(tmp_path / "b.h5"))
    bad_scale = valid_arrays["scale"][:4].copy()
    bad_scale[3] = -1
    _small_h5(tmp_path / "c.h5", valid_arrays, scale=bad_scale)
    with pytest.raises(HGCError, match=r"c\.h5: record 3: field 'scale'"):
        MPIIH5Source(str(tmp_path / "c.h5"))
    (tmp_path / "d.h5").write_text("plain text")
    with pytest.raises(HGCError, match=r"d\.h5.*HDF5"):
        MPIIH5Source(str(tmp_path / "d.h5"))
    with pytest.raises(HGCError, match="not found"):
        MPIIH5Source(str(tmp_path / "nope.h5"))


def _records() -> list:
    joints = [[10.0 + j, 20.0 + 2 * j] for j in range(16)]
    joints[5] = [-1.0, -1.0]
    vis = [1] * 16
    vis[5] = 0
    return [
        {"image": "a.jpg", "center": [21.0, 31.0], "scale": 0.5, "joints": joints, "joints_vis": vis,
         "headbox": [[1.0, 2.0], [4.0, 6.0]]},
        {"image": "b.jpg", "center": [11.0, 11.0], "scale": 0.25, "joints": joints, "joints_vis": vis},
    ]


def test_json_round_trip_and_open_source(tmp_path):
    (tmp_path / "images").mkdir()
    for name in ("a.jpg", "b.jpg"):
        _write_image(tmp_path / "images", name)
    path = tmp_path / "valid.json"
    path.write_text(json.dumps(_records()))
    src = open_source(f"mpii:{path}")
    assert isinstance(src, MPIIJsonSource) and len(src) == 2
    s = src[0]
    assert np.allclose(s.joints[3], [12.0, 25.0]) and np.allclose(s.joints[5], -1)  # 1-based → 0-based
    assert s.visible[5] == 0 and s.visible.sum() == 15
    assert np.allclose(s.center, [20.0, 30.0 + 15 * 0.5]) and np.isclose(s.scale, 0.625)
    assert np.isclose(s.head_size, 0.6 * 5.0)
    assert np.isnan(src[1].head_size)
    j, v, h = src.ground_truth()
    assert j.shape == (2, 16, 2) and v.shape == (2, 16) and np.isclose(h[0], 3.0)
    other = tmp_path / "imgs"
    other.mkdir()
    _write_image(other, "a.jpg")
    lenient = open_source(f"mpii:{path}:{other}", skip_bad=True)
    assert len(lenient) == 1 and lenient.skipped[0].index == 1


def test_malformed_json_records_name_index_and_field(tmp_path):
    recs = _records()
    recs[1]["joints"] = recs[1]["joints"][:15]
    (tmp_path / "j.json").write_text(json.dumps(recs))
    with pytest.raises(HGCError, match=r"j\.json: record 1: field 'joints'"):
        MPIIJsonSource(str(tmp_path / "j.json"))
    recs = _records()
    del recs[0]["scale"]
    (tmp_path / "k.json").write_text(json.dumps(recs))
    with pytest.raises(HGCError, match=r"k\.json: record 0: missing field 'scale'"):
        MPIIJsonSource(str(tmp_path / "k.json"))
    (tmp_path / "l.json").write_text("{broken")
    with pytest.raises(HGCError, match=r"l\.json: not a readable JSON"):
        MPIIJsonSource(str(tmp_path / "l.json"))


def test_open_source_specs(tmp_path):
    with pytest.raises(HGCError, match="known: synthetic, mpii"):
        open_source("coco:x.json")
    with pytest.raises(HGCError, match=r"\.h5 or \.json"):
        open_source(f"mpii:{tmp_path}/x.txt")
    src = open_source(f"mpii:{VALID}")
    assert isinstance(src, MPIIH5Source) and src.images == str(VALID.parent / "images")
