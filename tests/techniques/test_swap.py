"""The ``swap`` op: config changes checked when the recipe is read, exact weight transplant, function-preserving
new layers, blockwise imitation that lowers every block's error, scratch blocks listed, and a swapped
student that saves, reloads in a fresh process and exports with parity."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from compress.data.dataset import PoseDataset, open_source
from compress.errors import HGCError
from compress.nets import checkpoint
from compress.nets.blocks import block_paths
from compress.nets.config import HourglassConfig
from compress.nets.hourglass import StackedHourglass
from compress.onnx_meta import read_metadata
from compress.recipe import parse_recipe
from compress.rundir import read_json
from compress.runner import run_recipe
from compress.steps import Budget, StepContext
from compress.techniques.distill import SwapParams, block_mse, blockwise_init, build_student, swap

ROOT = Path(__file__).resolve().parents[2]
TEACHER = HourglassConfig(stacks=2, features=16, depth=2, input_size=32)


pytestmark = pytest.mark.usefixtures("one_thread")


def _teacher(seed: int = 1, **changes: object) -> StackedHourglass:
    torch.manual_seed(seed)
    return StackedHourglass(TEACHER.replace(**changes) if changes else TEACHER).eval()


def _recipe(params: dict) -> object:
    return parse_recipe({"name": "s", "steps": [{"swap": params}], "evaluate": {"limit": 2, "batch_size": 2},
                         "measure": {"runtimes": []}}, "r.yaml")


@pytest.mark.parametrize("config, message", [
    ({"block": "dicee"}, r"r\.yaml: steps\[0\]\.swap\.config\.block: unknown block type 'dicee'; registered: "),
    ({"blok": "dice"}, r"steps\[0\]\.swap\.config: unknown key 'blok' \(did you mean 'block'\?\)"),
    ({"block": "dice", "block_args": {"unit": 2}}, r"steps\[0\]\.swap\.config\.block_args for 'dice': .*'unit'"),
    ({"joints": 8}, r"steps\[0\]\.swap\.config\.joints: not swappable"),
    ({"input_size": 64}, r"steps\[0\]\.swap\.config\.input_size: not swappable"),
    ({"widths": {}}, r"steps\[0\]\.swap\.config\.widths: not swappable"),
    ({"norm": "layer"}, r"steps\[0\]\.swap\.config\.norm: 'layer' is not one of batch, group"),
    ({"features": 30}, r"steps\[0\]\.swap\.config\.features: must be a multiple of 4"),
    ({"stacks": 2, "depth": [4, 3, 2]}, r"steps\[0\]\.swap\.config\.depth: 3 depths given for 2 stacks"),
])
def test_bad_config_changes_are_one_line_when_the_recipe_is_read(config: dict, message: str) -> None:
    with pytest.raises(HGCError, match=message):
        _recipe({"config": config})


def test_other_bad_swap_params_are_one_line() -> None:
    with pytest.raises(HGCError, match=r"steps\[0\]\.swap\.alpha: 2\.0 is outside \[0\.0, 1\.0\]"):
        _recipe({"alpha": 2.0})
    with pytest.raises(HGCError, match=r"steps\[0\]\.swap\.blockwise_steps: -1 is outside"):
        _recipe({"blockwise_steps": -1})
    assert _recipe({"config": {"depth": [4, 3, 2]}}).steps[0].params.config == {"depth": [4, 3, 2]}  # 3-stack bases


def test_a_change_the_real_base_cannot_take_is_named_before_training(tmp_path: Path) -> None:
    base = tmp_path / "base.pt"
    checkpoint.save(_teacher(), base, meta={"dataset": "synthetic", "input_size": 32})
    with pytest.raises(HGCError,
                       match=r"^steps\[0\]\.swap\.config\.input_size: 32 is not divisible by 4·2\^depth = 64"):
        run_recipe(_recipe({"config": {"depth": 4}, "steps": 2}), checkpoint=str(base), out=str(tmp_path / "r"),
                   progress=False)
    assert not (tmp_path / "r" / "s" / "00-swap" / "log.jsonl").exists()


def test_swap_copies_every_matching_tensor_exactly_and_pairs_the_changed_blocks() -> None:
    teacher = _teacher()
    student, metrics, paths = build_student(teacher, SwapParams(config={"block": "dws"}), "swap")
    theirs = teacher.state_dict()
    copied = [k for k, v in student.state_dict().items() if k in theirs and theirs[k].shape == v.shape]
    assert len(copied) == metrics["tensors_copied"] > 0
    assert any(".conv1." in k for k in copied) and not any("depthwise" in k for k in copied)
    for name in copied:
        assert torch.equal(student.state_dict()[name], theirs[name]), name
    assert paths == block_paths(student) == metrics["blocks_blockwise"]  # every block changed, all paired
    assert metrics["blocks_from_scratch"] == [] and metrics["blocks_kept"] == 0


def test_unchanged_blocks_are_kept_and_unmatched_ones_start_from_scratch() -> None:
    teacher = _teacher()
    one = build_student(teacher, SwapParams(config={"stacks": 1}), "swap")[1]
    assert one["blocks_kept"] == len(block_paths(_teacher(stacks=1))) and one["blocks_from_scratch"] == []
    narrow = build_student(teacher, SwapParams(config={"features": 8}), "swap")[1]
    assert narrow["blocks_from_scratch"] == block_paths(_teacher(features=8)) and narrow["blocks_blockwise"] == []
    more = build_student(teacher, SwapParams(config={"modules": 2}, preserve=False), "swap")[1]
    assert more["blocks_from_scratch"] and all(p.endswith(".1") for p in more["blocks_from_scratch"])


def test_new_deconv_and_concat_layers_start_as_the_operations_they_replace() -> None:
    teacher = _teacher()
    student, metrics, paths = build_student(teacher, SwapParams(config={"upsample": "deconv", "skip": "concat"}),
                                            "swap")
    assert len(metrics["layers_preserved"]) == 8 and paths == []  # 2 stacks × 2 levels × (up, fuse)
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(student.eval()(images), teacher(images), atol=1e-5)
    plain = build_student(teacher, SwapParams(config={"upsample": "deconv"}, preserve=False), "swap")[1]
    assert plain["layers_preserved"] == []


@pytest.mark.parametrize("config", [{"modules": 3}, {"block": "hru"},
                                    {"block": "hru", "upsample": "deconv", "modules": 2}])
def test_swaps_that_only_add_to_the_teacher_start_as_the_teacher(config: dict) -> None:
    """Appended blocks start as the identity and HRU units around the teacher's bottleneck: the student
    computes the teacher's heatmaps before any training, so no block needs blockwise imitation."""
    teacher = _teacher()
    student, metrics, paths = build_student(teacher, SwapParams(config=config), "swap")
    assert paths == [] and metrics["blocks_from_scratch"] == [] and metrics["blocks_preserved"]
    assert metrics["blocks_kept"] == len(block_paths(student))
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(student.eval()(images), teacher(images), atol=1e-5)
    plain, plain_metrics, plain_paths = build_student(teacher, SwapParams(config=config, preserve=False), "swap")
    assert plain_metrics["blocks_preserved"] == []
    with torch.no_grad():
        assert not torch.allclose(plain.eval()(images), teacher(images), atol=1e-3)


def test_blockwise_phase_lowers_every_blocks_error() -> None:
    teacher = _teacher()
    student, _, paths = build_student(teacher, SwapParams(config={"block": "dice"}), "swap")
    val = PoseDataset(open_source("synthetic:val", size=32), 32, 8)
    images = torch.stack([val[i]["image"] for i in range(8)])
    before = block_mse(student, teacher, paths, images)  # what the phase optimises: norms on batch statistics
    logged: list[dict] = []
    result = blockwise_init(student, teacher, paths, "synthetic", steps=15, batch_size=4, lr=3e-3, log=logged.append,
                            log_every=5)
    after = block_mse(student, teacher, paths, images)
    assert result.steps == 15 and set(result.last) == set(paths)
    assert [r["step"] for r in logged] == [1, 5, 10, 15]
    for path in paths:
        assert after[path] < before[path], path
    assert sum(result.last.values()) < sum(result.first.values())


def test_zero_blockwise_steps_stays_zero_under_quick() -> None:
    params = SwapParams(blockwise_steps=0, steps=500)
    quick = Budget(quick=True).apply(params)
    assert quick.blockwise_steps == 0 and quick.steps == 5


RELOAD = """
import json, sys, torch
from compress.nets import checkpoint
model, info = checkpoint.load(sys.argv[1])
torch.manual_seed(0)
with torch.no_grad():
    out = model(torch.rand(2, 3, 32, 32))
print(json.dumps({"config": info.config.to_dict(), "sum": float(out.double().sum())}))
"""


def test_swapped_student_runs_saves_reloads_elsewhere_and_exports_with_parity(tmp_path: Path) -> None:
    base = tmp_path / "base.pt"
    checkpoint.save(_teacher(), base, meta={"dataset": "synthetic", "input_size": 32})
    changes = {"block": "gated", "skip": "concat", "upsample": "deconv", "features": 12, "stacks": 1}
    recipe = _recipe({"config": changes, "steps": 4, "blockwise_steps": 3, "batch_size": 2, "val_every": 2,
                      "val_samples": 4, "feature_layers": [{"student": "stacks.0.hourglass", "weight": 0.01}]})
    result = run_recipe(recipe, checkpoint=str(base), out=str(tmp_path / "runs"), progress=False)
    step_dir = Path(result.steps[0].dir)
    metrics = read_json(step_dir / "metrics.json")
    assert metrics["blocks_from_scratch"] == block_paths(StackedHourglass(TEACHER.replace(**changes)))
    assert metrics["val_curve"] == [[2, metrics["val_curve"][0][1]], [4, metrics["val_curve"][1][1]]]
    assert not (step_dir / "train.pt").exists() and not (step_dir / "blockwise.pt").exists()  # scratch cleared
    model, info = checkpoint.load(step_dir / "model.pt")
    assert {k: info.config.to_dict()[k] for k in changes} == changes and info.lineage[-1]["op"] == "swap"
    fresh = subprocess.run([sys.executable, "-c", RELOAD, str(step_dir / "model.pt")], capture_output=True,
                           text=True, check=True, cwd=ROOT)
    torch.manual_seed(0)
    with torch.no_grad():
        here = float(model(torch.rand(2, 3, 32, 32)).double().sum())
    assert json.loads(fresh.stdout)["sum"] == pytest.approx(here, rel=1e-6)
    exported = read_metadata(Path(result.dir) / result.results["artifact"]["path"])  # the run's own export
    assert exported["parity"]["max_abs_diff"] <= 1e-4 and exported["config"] == info.config.to_dict()
    assert result.results["pckh_mean"] is not None


def test_an_interrupted_swap_resumes_from_its_blockwise_result_and_training_checkpoint(tmp_path: Path) -> None:
    params = SwapParams(config={"block": "dws"}, steps=2, blockwise_steps=2, batch_size=2, checkpoint_every=1)
    teacher = _teacher()

    def ctx(resume: bool) -> StepContext:
        return StepContext(step_dir=tmp_path, data="synthetic", resume=resume, progress=False,
                           teacher_loader=lambda: teacher, meta={"recipe_step": 0})

    first = swap(_teacher(), params, ctx(False))  # leaves blockwise.pt and train.pt (the runner deletes them)
    assert (tmp_path / "blockwise.pt").is_file() and (tmp_path / "train.pt").is_file()
    again = swap(_teacher(), params, ctx(True))  # killed after the last training checkpoint
    assert again.metrics["blockwise_resumed"] and again.metrics["resumed"]
    assert again.metrics["blockwise_steps"] == first.metrics["blockwise_steps"] == 2  # the curve's offset
    for name in ("train.pt", "train.pt.state"):  # killed before the first training checkpoint
        (tmp_path / name).unlink()
    third = swap(_teacher(), params, ctx(True))
    assert third.metrics["blockwise_resumed"] and not third.metrics["resumed"]
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[key]), key
        assert torch.equal(value, third.model.state_dict()[key]), key
