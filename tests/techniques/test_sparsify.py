"""Unstructured magnitude pruning: exact zeros at the target, masks held through fine-tuning, heads dense."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from compress.errors import HGCError
from compress.nets import checkpoint
from compress.nets.config import HourglassConfig
from compress.recipe import parse_recipe
from compress.steps import StepContext
from compress.techniques.sparsify import SparsifyParams, magnitude_masks, sparse_layers, sparsify
from compress.train import TrainConfig, train_new

ROOT = Path(__file__).resolve().parents[2]
ZEROS = """
import sys, torch
from compress.nets import checkpoint
model, _ = checkpoint.load(sys.argv[1])
print(sum(int((m.weight == 0).sum()) for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)))
"""


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("sparse") / "tiny.pt"
    train_new(HourglassConfig(stacks=2, features=16, depth=2, input_size=32), "synthetic",
              TrainConfig(steps=4, batch_size=4, lr=1e-3), str(path), progress=False)
    return path


def _run(trained: Path, step_dir: Path, **settings) -> tuple[torch.nn.Module, dict]:
    model, _ = checkpoint.load(trained)
    params = SparsifyParams.build({"steps": 6, "batch_size": 2, "updates": 3, "end": 0.5, **settings}, "test")
    ctx = StepContext(step_dir=step_dir, data="synthetic:train", progress=False,
                      teacher_loader=lambda: checkpoint.load(trained)[0])
    result = sparsify(model, params, ctx)
    return result.model, result.metrics


def _zeros(model: torch.nn.Module, names: list[str]) -> tuple[int, int]:
    weights = [model.get_submodule(n).weight for n in names]
    return sum(int((w == 0).sum()) for w in weights), sum(w.numel() for w in weights)


def test_global_sparsity_is_exact_held_through_training_and_recorded_per_layer(trained: Path, tmp_path: Path) -> None:
    model, metrics = _run(trained, tmp_path, sparsity=0.6)
    layers = sparse_layers(model)
    zeros, total = _zeros(model, layers)
    # the target is reached at step 3 of 6; three more steps of Adam would move any weight the masks let go
    assert zeros == round(0.6 * total) and metrics["zero_weights"] == zeros
    assert metrics["sparsity"] == pytest.approx(0.6, abs=0.01)
    assert metrics["layer_sparsity"] == {n: pytest.approx(float((model.get_submodule(n).weight == 0).float().mean()),
                                                          abs=1e-6) for n in layers}
    assert sorted(metrics["dense_layers"]) == ["merges.0.heatmaps", "stacks.0.score", "stacks.1.score"]
    for name in metrics["dense_layers"]:
        assert int((model.get_submodule(name).weight == 0).sum()) == 0
    saved = checkpoint.load(tmp_path / "train.pt")[0]  # training's own last checkpoint already holds the masks
    assert _zeros(saved, layers) == (zeros, total)
    path = tmp_path / "sparse.pt"
    checkpoint.save(model, path)
    fresh = subprocess.run([sys.executable, "-c", ZEROS, str(path)], capture_output=True, text=True, check=True,
                           cwd=ROOT)
    assert int(fresh.stdout) == _zeros(model, [n for n, m in model.named_modules()
                                               if isinstance(m, torch.nn.Conv2d)])[0]


def test_local_scope_gives_every_layer_the_target(trained: Path, tmp_path: Path) -> None:
    model, metrics = _run(trained, tmp_path, sparsity=0.5, scope="local", exclude=["stem.conv.*"])
    assert "stem.conv.0" in metrics["dense_layers"]
    for name, share in metrics["layer_sparsity"].items():
        weight = model.get_submodule(name).weight
        assert int((weight == 0).sum()) == round(0.5 * weight.numel()) and share == pytest.approx(0.5, abs=0.01)


def test_agp_schedule_is_cubic_and_ends_at_the_target() -> None:
    params = SparsifyParams(sparsity=0.8, steps=100, updates=4, begin=0.0, end=0.8)
    points = params.schedule()
    assert sorted(points) == [20, 40, 60, 80]
    assert [points[k] for k in (20, 40, 60, 80)] == pytest.approx([0.8 * (1 - (1 - i / 4) ** 3) for i in (1, 2, 3, 4)])


def test_masks_drop_exactly_the_smallest_weights() -> None:
    model = torch.nn.Module()
    model.a = torch.nn.Conv2d(1, 1, 1, bias=False)
    model.b = torch.nn.Conv2d(1, 4, 1, bias=False)
    with torch.no_grad():
        model.a.weight.fill_(0.5)
        model.b.weight.copy_(torch.tensor([0.1, -0.9, 0.3, -0.05]).view(4, 1, 1, 1))
    masks = magnitude_masks(model, ["a", "b"], 0.6, "global")
    assert masks["a"].all() and masks["b"].flatten().tolist() == [False, True, False, False]


@pytest.mark.parametrize("text, message", [
    ("{sparsity: 0}", "steps[0].sparsify.sparsity: 0.0 must lie in (0, 1)"),
    ("{sparsity: 1.0}", "steps[0].sparsify.sparsity: 1.0 must lie in (0, 1)"),
    ("{begin: 0.8, end: 0.5}", "steps[0].sparsify.end: 0.5 comes before begin 0.8"),
    ("{scope: layer}", "steps[0].sparsify.scope: 'layer' is not one of global, local"),
])
def test_bad_values_are_one_line_with_the_recipe_path(text: str, message: str) -> None:
    with pytest.raises(HGCError) as info:
        parse_recipe({"steps": [{"sparsify": yaml.safe_load(text)}]}, "r.yaml")
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("exclude, message", [
    (["*"], "every convolution is excluded; nothing to sparsify"),
    (["stem.conv.9"], "exclude[0]: 'stem.conv.9' matches no convolution"),
])
def test_bad_excludes_fail_before_training(trained: Path, tmp_path: Path, exclude: list[str], message: str) -> None:
    with pytest.raises(HGCError, match=message.replace("[", r"\[").replace("*", r"\*")):
        _run(trained, tmp_path, exclude=exclude)
    assert list(tmp_path.iterdir()) == []
