"""The ``distill`` op and the distillation core: FPD against the teacher's last stack for any pair of the family,
a frozen teacher, feature adapters, resume and DDP with adapters, and bad input refused before training."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from compress.data.dataset import PoseDataset, open_source
from compress.distill import FeatureDistill, FeatureLayer, check_pair
from compress.errors import HGCError
from compress.nets import checkpoint
from compress.nets.config import HourglassConfig
from compress.nets.hourglass import StackedHourglass
from compress.recipe import parse_recipe
from compress.runner import run_recipe
from compress.steps import StepContext
from compress.techniques.distill import DistillOpParams, distill
from compress.train import TrainConfig, distill_loss, train

TEACHER = HourglassConfig(stacks=2, features=16, depth=2, input_size=32)
STUDENTS = {"1 stack, 8 wide, dws": {"stacks": 1, "features": 8, "block": "dws"},
            "3 stacks, dice, depth 1": {"stacks": 3, "depth": 1, "block": "dice"},
            "gated, concat, deconv": {"block": "gated", "skip": "concat", "upsample": "deconv"}}


pytestmark = pytest.mark.usefixtures("one_thread")


def _net(config: HourglassConfig, seed: int = 0, **changes: object) -> StackedHourglass:
    torch.manual_seed(seed)
    return StackedHourglass(config.replace(**changes) if changes else config)


def _save(model: StackedHourglass, path: Path) -> str:
    checkpoint.save(model, path, meta={"dataset": "synthetic", "input_size": model.config.input_size})
    return str(path)


def _ctx(tmp_path: Path, teacher: StackedHourglass) -> StepContext:
    step_dir = tmp_path / "step"
    step_dir.mkdir(exist_ok=True)
    return StepContext(step_dir=step_dir, data="synthetic", progress=False, teacher_loader=lambda: teacher,
                       meta={"recipe_step": 0})


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("changes", list(STUDENTS.values()), ids=list(STUDENTS))
def test_distill_any_pair_of_the_family_learns_and_leaves_the_teacher_alone(tmp_path: Path, changes: dict) -> None:
    teacher = _net(TEACHER, seed=1).eval()
    before = _state(teacher)
    student = _net(TEACHER, seed=2, **changes)
    images = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        gap0 = ((student.eval()(images) - teacher(images)[:, -1:]) ** 2).mean()
    params = DistillOpParams(steps=12, batch_size=4, lr=2e-3, alpha=1.0, lr_milestones=[0.5])
    result = distill(student, params, _ctx(tmp_path, teacher))
    metrics = result.metrics
    assert metrics["steps"] == 12 and metrics["teacher_used"] and torch.isfinite(torch.tensor(metrics["final_loss"]))
    logged = [line for line in (tmp_path / "step" / "log.jsonl").read_text().splitlines() if '"distill"' in line]
    assert len(logged) == 12
    with torch.no_grad():
        gap1 = ((student.eval()(images) - teacher(images)[:, -1:]) ** 2).mean()
    assert gap1 < gap0  # every student stack moved toward the teacher's last stack
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, before[key]), key  # weights and norm statistics untouched


def test_the_loss_is_fpd_of_every_student_stack_against_the_teachers_last(tmp_path: Path) -> None:
    teacher = _net(TEACHER, seed=1, stacks=3, depth=1).eval()  # 3 stacks vs the student's 2
    student = _net(TEACHER, seed=2)
    probe = _net(TEACHER, seed=2).train()
    cfg = TrainConfig(steps=1, batch_size=3, lr=1e-9, distill_alpha=0.3)
    dataset = PoseDataset(open_source("synthetic:train", size=32, seed=0), 32, 8, 1.0, train=True, seed=0)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(3)])
    with torch.no_grad():
        last = teacher(batch["image"])[:, -1]
        want = distill_loss(probe(batch["image"]), last, batch["target"], batch["weight"], 0.3)
        other = distill_loss(probe(batch["image"]), teacher(batch["image"])[:, 0], batch["target"],
                             batch["weight"], 0.3)
    got = train(student, "synthetic", cfg, str(tmp_path / "s.pt"), teacher=teacher, progress=False).history[0]["loss"]
    assert got == pytest.approx(float(want), rel=1e-5) and got != pytest.approx(float(other), rel=1e-3)


def test_feature_adapters_bridge_widths_train_and_are_dropped(tmp_path: Path) -> None:
    teacher = _net(TEACHER, seed=1).eval()
    student = _net(TEACHER, seed=2, stacks=1, features=8)
    layers = [FeatureLayer("stacks.0.hourglass", "stacks.1.hourglass", 1.0, "f[0]"),
              FeatureLayer("stem", "stem", 0.5, "f[1]")]
    aux = FeatureDistill(layers, student, teacher, 32)
    assert [tuple(a.weight.shape) for a in aux.adapters] == [(16, 8, 1, 1), (16, 8, 1, 1)]
    images = torch.rand(4, 3, 32, 32)

    def feature_loss() -> float:
        aux.attach(student, teacher)
        student.eval()
        with torch.no_grad():
            student(images)
            teacher(images)
            value = float(aux(torch.zeros(1), {}))
        aux.detach()
        return value

    start = feature_loss()
    aux.attach(student, teacher)
    cfg = TrainConfig(steps=10, batch_size=4, lr=3e-3, lr_milestones=[0.5], distill_alpha=0.0)
    first = [p.clone() for p in aux.parameters()]
    train(student, "synthetic", cfg, str(tmp_path / "s.pt"), teacher=teacher, aux=aux, progress=False)
    aux.detach()
    assert any(not torch.equal(a, b) for a, b in zip(first, aux.parameters()))  # the adapters trained
    assert feature_loss() < start
    model, _ = checkpoint.load(tmp_path / "s.pt")  # a plain student: no adapter tensors in the file
    assert not any(k.startswith("adapters") for k in model.state_dict())


def test_training_with_adapters_resumes_bit_for_bit(tmp_path: Path) -> None:
    teacher = _net(TEACHER, seed=1).eval()
    cfg = TrainConfig(steps=4, batch_size=2, lr=1e-3, lr_milestones=[0.5], checkpoint_every=2)
    layers = [FeatureLayer("stacks.0.hourglass", "stacks.1.hourglass", 1.0, "f[0]")]

    def run(out: str, stop_at: int | None = None, resume: bool = False) -> tuple[StackedHourglass, FeatureDistill]:
        student = _net(TEACHER, seed=2, stacks=1)
        aux = FeatureDistill(layers, student, teacher, 32).attach(student, teacher)
        calls = []

        def stop(heatmaps: torch.Tensor, _batch: dict) -> torch.Tensor:
            calls.append(1)
            if stop_at is not None and len(calls) == stop_at:
                raise KeyboardInterrupt
            return heatmaps.new_zeros(())

        train(student, "synthetic", cfg, out, teacher=teacher, aux=aux, extra_loss=stop, resume=resume,
              progress=False)
        return student, aux

    straight, straight_aux = run(str(tmp_path / "a.pt"))
    with pytest.raises(KeyboardInterrupt):
        run(str(tmp_path / "b.pt"), stop_at=4)
    resumed, resumed_aux = run(str(tmp_path / "b.pt"), resume=True)
    for a, b in zip([*straight.state_dict().values(), *straight_aux.state_dict().values()],
                    [*resumed.state_dict().values(), *resumed_aux.state_dict().values()]):
        assert torch.equal(a, b)


def test_pair_check_names_joints_and_resolution() -> None:
    check_pair(TEACHER.replace(stacks=1, features=8, block="dice"), TEACHER, "x")  # any family member
    with pytest.raises(HGCError, match=r"^steps\[0\]\.distill: the student predicts 8 joints at 8×8, the teacher 16"):
        check_pair(TEACHER.replace(joints=8), TEACHER, "steps[0].distill")
    with pytest.raises(HGCError, match="16 joints at 16×16, the teacher 16 at 8×8"):
        check_pair(TEACHER.replace(input_size=64), TEACHER, "w")


def _recipe(op: str, params: dict, **top: object) -> object:
    return parse_recipe({"name": "t", "steps": [{op: params}], "evaluate": {"limit": 2, "batch_size": 2},
                         "measure": {"runtimes": []}, **top}, "r.yaml")


@pytest.mark.parametrize("params, message", [
    ({"alpha": 1.5}, r"r\.yaml: steps\[0\]\.distill\.alpha: 1\.5 is outside \[0\.0, 1\.0\]"),
    ({"alpha": -0.1}, r"steps\[0\]\.distill\.alpha: -0\.1 is outside"),
    ({"feature_layers": [{"teacher": "stem"}]}, r"steps\[0\]\.distill\.feature_layers\[0\]\.student: name"),
    ({"feature_layers": [{"student": "stem", "wieght": 1}]}, r"feature_layers\[0\]: unknown key 'wieght'"),
    ({"val_every": -1}, r"steps\[0\]\.distill\.val_every: -1 is outside"),
])
def test_bad_distill_params_are_one_line_when_the_recipe_is_read(params: dict, message: str) -> None:
    with pytest.raises(HGCError, match=message):
        _recipe("distill", params)


@pytest.mark.parametrize("layer, message", [
    ({"student": "stacks.0.hourglas"}, (r"^steps\[0\]\.distill\.feature_layers\[0\]\.student: no layer "
                                        r"'stacks\.0\.hourglas' in the student \(did you mean 'stacks\.0\.hourglass'")),
    ({"student": "stem", "teacher": "stacks.7"}, r"feature_layers\[0\]\.teacher: no layer 'stacks\.7' in the teacher"),
    ({"student": "stacks.0"}, r"feature_layers\[0\]\.student: layer 'stacks\.0' of the student does not output"),
    ({"student": "stem", "teacher": "stacks.0.hourglass.inner"},
     r"feature_layers\[0\]: student layer 'stem' gives 8×8 maps, teacher layer 'stacks\.0\.hourglass\.inner' 4×4"),
])
def test_bad_feature_layers_stop_the_run_before_training(tmp_path: Path, layer: dict, message: str) -> None:
    base = _save(_net(TEACHER), tmp_path / "base.pt")
    with pytest.raises(HGCError, match=message):
        run_recipe(_recipe("distill", {"steps": 3, "feature_layers": [layer]}), checkpoint=base,
                   out=str(tmp_path / "runs"), progress=False)
    step_dir = tmp_path / "runs" / "t" / "00-distill"
    assert not (step_dir / "train.pt").exists() and not (step_dir / "log.jsonl").exists()


def test_a_teacher_with_other_joints_stops_the_run_before_training(tmp_path: Path) -> None:
    base = _save(_net(TEACHER), tmp_path / "base.pt")
    other = _save(_net(TEACHER, joints=8), tmp_path / "other.pt")
    with pytest.raises(HGCError, match=r"^steps\[0\]\.distill: the student predicts 16 joints at 8×8, the teacher 8"):
        run_recipe(_recipe("distill", {"steps": 3}, teacher=other), checkpoint=base, out=str(tmp_path / "runs"),
                   progress=False)
    assert not (tmp_path / "runs" / "t" / "00-distill" / "train.pt").exists()


DDP_SCRIPT = textwrap.dedent("""
    import os, sys, torch
    from compress.distill import FeatureDistill, FeatureLayer
    from compress.nets.config import HourglassConfig
    from compress.nets.hourglass import StackedHourglass
    from compress.train import TrainConfig, train
    torch.manual_seed(1)
    teacher = StackedHourglass(HourglassConfig(stacks=2, features=16, depth=2, input_size=32)).eval()
    torch.manual_seed(2)
    student = StackedHourglass(HourglassConfig(stacks=1, features=8, depth=2, input_size=32, block="dws"))
    aux = FeatureDistill([FeatureLayer("stacks.0.hourglass", "stacks.1.hourglass", 1.0, "f")], student, teacher, 32)
    aux.attach(student, teacher)
    out = sys.argv[1]
    result = train(student, "synthetic", TrainConfig(steps=6, batch_size=2, lr=1e-3, lr_milestones=[0.5]),
                   os.path.join(out, "ddp.pt"), teacher=teacher, aux=aux, progress=False)
    rank = int(os.environ["RANK"])
    torch.save({"state": student.state_dict(), "aux": aux.state_dict(),
                "losses": [r["loss"] for r in result.history]}, os.path.join(out, f"rank{rank}.pt"))
""")


def test_ddp_distillation_with_adapters_keeps_ranks_in_step(tmp_path: Path) -> None:
    script = tmp_path / "ddp_distill.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
                           str(script), str(tmp_path)], check=False, capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for part in ("state", "aux"):
        for key, value in ranks[0][part].items():
            assert torch.equal(value, ranks[1][part][key]), (part, key)
    assert all(torch.isfinite(torch.tensor(ranks[0]["losses"])))
    assert ranks[0]["losses"] != ranks[1]["losses"]  # each rank saw its own half of the batches
