"""Evaluation end to end: an oracle predictor scores ~100, a model scores a finite table, flip works."""
from __future__ import annotations

import numpy as np
import pytest

from compress.data import transforms as T
from compress.data.dataset import PoseDataset, open_source
from compress.evaluate import evaluate
from compress.nets.config import HourglassConfig
from compress.nets.hourglass import StackedHourglass


class Oracle:
    """Returns the ground-truth heatmaps of the samples it is asked about, in order."""

    input_size = 64

    def __init__(self) -> None:
        self.dataset = PoseDataset(open_source("synthetic:val", size=64), 64, 16, sigma=1.0)
        self.seen = 0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        items = [self.dataset[self.seen + i] for i in range(len(images))]
        if np.allclose(images[0], items[0]["image"].numpy()):
            maps = [it["target"].numpy() for it in items]
        else:  # the flip test's mirrored call: heatmaps of the mirrored crops, joints swapped
            assert np.allclose(images[0], items[0]["image"].numpy()[..., ::-1])
            return np.stack([self._mirrored_target(it) for it in items])
        self.seen += len(images)  # the flip test asks for the mirrored crops first, then the plain ones
        return np.stack(maps)

    @staticmethod
    def _mirrored_target(item: dict) -> np.ndarray:
        crop = T.transform_points(item["joints"].numpy(), T.invert_affine(item["inverse"].numpy()))
        _, joints, visible = T.flip_horizontal(None, crop, item["visible"].numpy(), 64)
        return T.gaussian_heatmaps(joints, visible, (64, 64), (16, 16), 1.0)[0]


def test_oracle_heatmaps_score_full_marks() -> None:
    report = evaluate(Oracle(), "synthetic:val", limit=24, batch_size=8)
    table = report.result.table()
    assert table["Mean"] > 99.0, table
    assert report.preds.shape == (24, 16, 2)


def test_oracle_survives_the_flip_test() -> None:
    """Flip averaging maps the mirrored heatmaps back exactly enough to keep full marks."""
    report = evaluate(Oracle(), "synthetic:val", limit=16, batch_size=8, flip=True)
    assert report.result.table()["Mean"] > 99.0


def test_model_table_has_every_column(tiny_config: HourglassConfig) -> None:
    model = StackedHourglass(tiny_config.replace(input_size=64))
    report = evaluate(model, "synthetic:val", limit=8, batch_size=4, flip=True)
    table = report.result.table()
    for column in ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean"):
        assert 0.0 <= table[column] <= 100.0
    assert np.isfinite(report.preds).all()


@pytest.mark.parametrize("flip", [False, True])
def test_evaluation_is_deterministic(tiny_config: HourglassConfig, flip: bool) -> None:
    model = StackedHourglass(tiny_config.replace(input_size=64)).eval()
    a = evaluate(model, "synthetic:val", limit=6, flip=flip).preds
    b = evaluate(model, "synthetic:val", limit=6, flip=flip).preds
    assert np.array_equal(a, b)
