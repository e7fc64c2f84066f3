"""MPII sources: the ``valid.h5``/``train.h5`` layout of the official PyTorch port and HRNet-style JSON.

Both yield ``Sample`` objects in 0-based pixel coordinates so that crops, metrics and the
``preds.mat`` writer (which adds the 1 back) agree whatever annotation layout was used.

What the real files hold (checked against ``../shared/mpii``):

* ``part`` in ``valid.h5`` is in MPII's 1-based MATLAB coordinates: it equals ``pos_gt_src`` of the
  official ``detections_our_format.mat`` (record for record, < 1 px rounding). We subtract 1 from joints
  and center, as HRNet and pytorch-pose do, so that a joint sits on the OpenCV pixel centre it labels.
* A joint that was never annotated is stored as (0, 0); this matches the official ``jnt_missing`` for
  all 2958 × 16 entries. ``visible`` in the h5 is MPII's *is-visible* flag (0 also for annotated but
  occluded joints, 10 243 of them), so it must NOT be used for PCKh: ``Sample.visible`` = annotated,
  ``Sample.occluded`` = annotated and h5 visible == 0.
* ``normalize`` is already 0.6 · ‖head-box diagonal‖ (ratio to the official head boxes is 0.6 within
  4e-7 on every record), so ``head_size = normalize``.
* Center/scale adjustment, as in the field: ``c_y += 15 · s`` with the ORIGINAL s, then ``s *= 1.25``
  (skipped when c_x == −1, the field's "no center" marker).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import cv2
import h5py
import numpy as np

from ..errors import HGCError, first_line
from .sample import Sample
from .skeleton import NUM_JOINTS

H5_KEYS: tuple[str, ...] = ("center", "scale", "part", "visible", "normalize", "imgname")
JSON_KEYS: tuple[str, ...] = ("image", "center", "scale", "joints", "joints_vis")
KNOWN_PREFIXES: tuple[str, ...] = ("synthetic", "mpii")


class SkippedRecord(NamedTuple):
    """A record left out with ``skip_bad=True``: its index in the annotation file and why."""

    index: int
    file: str
    reason: str


def adjust_center_scale(center: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """MPII's crop adjustment: c_y += 15·s (original s), then s *= 1.25; no-op when c_x == −1.

    Moves the box down and enlarges it so feet are less often cut off (pose-hg-train, HRNet, pytorch-pose).
    """
    c = np.array(center, dtype=np.float64)
    s = float(scale)
    if c[0] != -1:
        c[1] += 15.0 * s
        s *= 1.25
    return c, s


def read_image(path: str, index: int) -> np.ndarray:
    """Read an RGB uint8 image with OpenCV, or raise HGCError naming the file and record index.

    One place for the "missing or unreadable image" error every source reports the same way.
    """
    if not os.path.isfile(path):
        raise HGCError(f"{path}: image missing (record {index})")
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise HGCError(f"{path}: image unreadable (record {index})")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _missing_marker(joints: np.ndarray) -> np.ndarray:
    """(…, 16) bool: joints stored with MPII's 'not annotated' marker (0, 0) or HRNet's (−1, −1)."""
    return ((joints == 0).all(-1)) | ((joints == -1).all(-1))


class _Source:
    """Shared machinery: kept-record bookkeeping, lazy image reads, skip_bad."""

    def __init__(self, annotations: str, images: str | None, skip_bad: bool) -> None:
        self.annotations = str(annotations)
        self.images = str(images) if images is not None else str(Path(annotations).parent / "images")
        self.skip_bad = skip_bad
        self.skipped: list[SkippedRecord] = []
        self.indices = np.zeros(0, dtype=np.int64)  # kept positions → record index in the file

    def _image_path(self, record: int) -> str:
        raise NotImplementedError

    def _build(self, record: int, image: np.ndarray) -> Sample:
        raise NotImplementedError

    def _drop_missing_images(self, count: int) -> None:
        keep = []
        for i in range(count):
            path = self._image_path(i)
            if os.path.isfile(path):
                keep.append(i)
            else:
                self.skipped.append(SkippedRecord(i, path, "image missing"))
        self.indices = np.asarray(keep, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Sample:
        """Sample ``i`` of the kept records; with skip_bad an unreadable image moves on to the next one."""
        n = len(self.indices)
        if not -n <= i < n:
            raise IndexError(f"{self.annotations}: index {i} out of range ({n} records)")
        i %= n
        for attempt in range(n):
            record = int(self.indices[(i + attempt) % n])
            try:
                image = read_image(self._image_path(record), record)
            except HGCError as err:
                if not self.skip_bad:
                    raise
                if all(s.index != record for s in self.skipped):
                    self.skipped.append(SkippedRecord(record, self._image_path(record), str(err)))
                continue
            return self._build(record, image)
        raise HGCError(f"{self.annotations}: no readable image among {n} records (see skipped)")

    def ground_truth(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(joints (N,16,2), visible (N,16), head_size (N,)) of the kept records, no image reads.

        Lets a caller (e.g. an external scorer) read the labels without loading any pixels.
        """
        raise NotImplementedError


class MPIIH5Source(_Source):
    """Records of the ``valid.h5``/``train.h5`` layout (princeton-vl pytorch_stacked_hourglass).

    Joints/center are converted to 0-based px, ``visible`` = annotated (not the h5's is-visible flag),
    ``head_size`` = h5 ``normalize`` (already 0.6·diag); see the module docstring for the evidence.
    """

    def __init__(self, annotations: str, images: str | None = None, skip_bad: bool = False) -> None:
        super().__init__(annotations, images, skip_bad)
        data = _read_h5(self.annotations)
        self._imgname = data["imgname"]
        part = data["part"]
        annotated = ~_missing_marker(part)
        self._joints = np.where(annotated[..., None], part - 1.0, -1.0).astype(np.float32)
        self._visible = annotated.astype(np.float32)
        self._occluded = (annotated & (data["visible"] <= 0)).astype(np.float32)
        self._center = data["center"]
        self._scale = data["scale"]
        self._head = data["normalize"].astype(np.float64)
        bad = _bad_h5_records(data)
        if bad and not skip_bad:
            i, key = bad[0]
            raise HGCError(f"{self.annotations}: record {i}: field '{key}' is not finite/positive "
                           f"({len(bad)} bad records; use skip_bad to leave them out)")
        self.skipped.extend(SkippedRecord(i, self.annotations, f"bad field '{key}'") for i, key in bad)
        if skip_bad:
            self._drop_missing_images(len(self._imgname))
            bad_set = {i for i, _ in bad}
            self.indices = np.asarray([i for i in self.indices if i not in bad_set], dtype=np.int64)
        else:
            self.indices = np.arange(len(self._imgname), dtype=np.int64)

    def _image_path(self, record: int) -> str:
        return os.path.join(self.images, self._imgname[record])

    def _build(self, record: int, image: np.ndarray) -> Sample:
        c, s = adjust_center_scale(self._center[record], float(self._scale[record]))
        c = c - 1.0  # 1-based MATLAB → 0-based px (after the adjustment, as HRNet does)
        return Sample(image=image, joints=self._joints[record].copy(), visible=self._visible[record].copy(),
                      center=c.astype(np.float32), scale=s, head_size=float(self._head[record]),
                      name=self._imgname[record], occluded=self._occluded[record].copy(), record=record)

    def ground_truth(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = self.indices
        return self._joints[k].copy(), self._visible[k].copy(), self._head[k].copy()


def _bad_h5_records(data: dict[str, np.ndarray]) -> list[tuple[int, str]]:
    """(record, field) pairs with a non-finite center/part or a scale that is not > 0.

    A bad ``normalize`` is not fatal here (training does not need it); PCKh refuses it when scoring.
    """
    checks = {
        "center": ~np.isfinite(data["center"]).all(-1),
        "scale": ~(np.isfinite(data["scale"]) & (data["scale"] > 0)),
        "part": ~np.isfinite(data["part"]).all((-1, -2)),
    }
    bad: dict[int, str] = {}
    for key, mask in checks.items():
        for i in np.flatnonzero(mask):
            bad.setdefault(int(i), key)
    return sorted(bad.items())


def _read_h5(path: str) -> dict[str, np.ndarray]:
    """Load and shape-check the six datasets of the h5 layout; errors name the file and key."""
    if not os.path.isfile(path):
        raise HGCError(f"{path}: annotation file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise HGCError(f"{path}: not a readable HDF5 file ({first_line(err)})") from err
    out: dict[str, np.ndarray] = {}
    with f:
        for key in H5_KEYS:
            if key not in f:
                raise HGCError(f"{path}: missing dataset '{key}' (h5 layout needs {', '.join(H5_KEYS)})")
            try:
                out[key] = f[key][()]
            except (TypeError, AttributeError) as err:
                raise HGCError(f"{path}: key '{key}' is not a dataset ({first_line(err)})") from err
    n = len(out["imgname"]) if np.ndim(out["imgname"]) == 1 else -1
    expected = {"center": (n, 2), "scale": (n,), "part": (n, NUM_JOINTS, 2), "visible": (n, NUM_JOINTS),
                "normalize": (n,), "imgname": (n,)}
    for key, shape in expected.items():
        if out[key].shape != shape:
            raise HGCError(f"{path}: dataset '{key}' has shape {out[key].shape}, expected {shape} "
                           f"(N = {n} from 'imgname')")
    names = []
    for i, raw in enumerate(out["imgname"]):
        name = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, np.bytes_)) else str(raw)
        if not name:
            raise HGCError(f"{path}: record {i}: field 'imgname' is empty")
        names.append(name)
    out["imgname"] = np.asarray(names, dtype=object)
    for key in ("center", "scale", "part", "visible", "normalize"):
        try:
            out[key] = out[key].astype(np.float64)
        except (TypeError, ValueError) as err:
            raise HGCError(f"{path}: dataset '{key}' is not numeric ({first_line(err)})") from err
    return out


class MPIIJsonSource(_Source):
    """HRNet-style JSON: a list of ``{image, center, scale, joints (16×2), joints_vis (16)}`` records.

    Like HRNet, coordinates are MPII 1-based and 1 is subtracted from joints and center on load.
    A joint counts when ``joints_vis > 0`` and it is not the (0,0)/(−1,−1) missing marker. HRNet's JSON
    carries no head box: an optional ``head_size`` (already 0.6·diag) or ``headbox`` ([[x1,y1],[x2,y2]])
    per record is used when present, else head_size is NaN (score with the official gt .mat instead).
    """

    def __init__(self, annotations: str, images: str | None = None, skip_bad: bool = False) -> None:
        super().__init__(annotations, images, skip_bad)
        self._records = [_parse_json_record(self.annotations, i, r)
                         for i, r in enumerate(_read_json_list(self.annotations))]
        if skip_bad:
            self._drop_missing_images(len(self._records))
        else:
            self.indices = np.arange(len(self._records), dtype=np.int64)

    def _image_path(self, record: int) -> str:
        return os.path.join(self.images, self._records[record]["image"])

    def _build(self, record: int, image: np.ndarray) -> Sample:
        r = self._records[record]
        c, s = adjust_center_scale(r["center"], r["scale"])
        c = c - 1.0  # 1-based → 0-based after the adjustment, as HRNet does
        return Sample(image=image, joints=r["joints"].copy(), visible=r["visible"].copy(),
                      center=c.astype(np.float32), scale=s, head_size=r["head_size"], name=r["image"], record=record)

    def ground_truth(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        recs = [self._records[int(k)] for k in self.indices]
        if not recs:
            return np.zeros((0, NUM_JOINTS, 2), np.float32), np.zeros((0, NUM_JOINTS), np.float32), np.zeros(0)
        return (np.stack([r["joints"] for r in recs]), np.stack([r["visible"] for r in recs]),
                np.array([r["head_size"] for r in recs], dtype=np.float64))


def _read_json_list(path: str) -> list:
    if not os.path.isfile(path):
        raise HGCError(f"{path}: annotation file not found")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise HGCError(f"{path}: not a readable JSON file ({first_line(err)})") from err
    if not isinstance(data, list):
        raise HGCError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return data


def _field_array(path: str, index: int, record: dict, key: str, shape: tuple[int, ...]) -> np.ndarray:
    try:
        arr = np.asarray(record[key], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise HGCError(f"{path}: record {index}: field '{key}' is not numeric ({first_line(err)})") from err
    if arr.shape != shape:
        raise HGCError(f"{path}: record {index}: field '{key}' has shape {arr.shape}, expected {shape}")
    if not np.all(np.isfinite(arr)):
        raise HGCError(f"{path}: record {index}: field '{key}' holds a non-finite value")
    return arr


def _parse_json_record(path: str, index: int, record: object) -> dict:
    """Validate one JSON record and convert it to 0-based arrays; errors name file, index and field."""
    if not isinstance(record, dict):
        raise HGCError(f"{path}: record {index}: expected an object, got {type(record).__name__}")
    for key in JSON_KEYS:
        if key not in record:
            raise HGCError(f"{path}: record {index}: missing field '{key}'")
    if not isinstance(record["image"], str) or not record["image"]:
        raise HGCError(f"{path}: record {index}: field 'image' must be a non-empty string")
    center = _field_array(path, index, record, "center", (2,))
    scale = _field_array(path, index, record, "scale", ())
    if not scale > 0:
        raise HGCError(f"{path}: record {index}: field 'scale' must be > 0, got {float(scale)}")
    rows = record["joints"]
    if isinstance(rows, list) and len(rows) == NUM_JOINTS and all(isinstance(r, list) and len(r) == 3
                                                                  for r in rows):
        record = {**record, "joints": [r[:2] for r in rows]}  # tolerate (x, y, v) triples
    joints = _field_array(path, index, record, "joints", (NUM_JOINTS, 2))
    vis = _field_array(path, index, record, "joints_vis", (NUM_JOINTS,))
    annotated = (vis > 0) & ~_missing_marker(joints)
    head = float("nan")
    if "head_size" in record:
        head = float(_field_array(path, index, record, "head_size", ()))
    elif "headbox" in record:
        box = _field_array(path, index, record, "headbox", (2, 2))
        head = 0.6 * float(np.linalg.norm(box[1] - box[0]))
    return {
        "image": record["image"],
        "center": center,
        "scale": float(scale),
        "joints": np.where(annotated[:, None], joints - 1.0, -1.0).astype(np.float32),
        "visible": annotated.astype(np.float32),
        "head_size": head,
    }


def open_source(spec: str, skip_bad: bool = False) -> MPIIH5Source | MPIIJsonSource:
    """Open ``mpii:ANNOT[:IMAGES]`` (ANNOT .h5 → h5 layout, .json → HRNet layout).

    IMAGES defaults to an ``images/`` folder beside the annotation file. ``synthetic[:split]`` specs
    are opened by the synthetic benchmark module, not here.
    """
    prefix, _, rest = spec.partition(":")
    if prefix != "mpii":
        if prefix == "synthetic":
            raise HGCError(f"data spec '{spec}': synthetic specs are opened by the synthetic benchmark, "
                           "not by the MPII loader")
        raise HGCError(f"data spec '{spec}': unknown source '{prefix}' (known: {', '.join(KNOWN_PREFIXES)})")
    annot, _, images = rest.partition(":")
    if not annot:
        raise HGCError(f"data spec '{spec}': expected mpii:ANNOT[:IMAGES]")
    suffix = Path(annot).suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return MPIIH5Source(annot, images or None, skip_bad=skip_bad)
    if suffix == ".json":
        return MPIIJsonSource(annot, images or None, skip_bad=skip_bad)
    raise HGCError(f"data spec '{spec}': annotation file must end in .h5 or .json, got '{annot}'")
