"""The training loop: it learns, resumes bit-for-bit, stops on NaN, distils, and runs under DDP."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from compress.errors import HGCError
from compress.nets import checkpoint
from compress.nets.config import HourglassConfig
from compress.nets.hourglass import StackedHourglass
from compress.train import TrainConfig, distill_loss, heatmap_loss, state_path, train, train_new

FAST = dict(batch_size=4, lr=1e-3, lr_milestones=[0.5])


def _model(config: HourglassConfig, seed: int = 0) -> StackedHourglass:
    torch.manual_seed(seed)
    return StackedHourglass(config)


def test_loss_falls_and_checkpoint_is_written(tmp_path: Path, tiny_config: HourglassConfig) -> None:
    out = str(tmp_path / "m.pt")
    result = train_new(tiny_config, "synthetic", TrainConfig(steps=12, **FAST), out, progress=False)
    losses = [r["loss"] for r in result.history]
    assert len(losses) == 12 and all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) < sum(losses[:3])
    model, info = checkpoint.load(out)
    assert info.meta["step"] == 12 and info.lineage[0]["op"] == "train"
    assert os.path.isfile(state_path(out))


class _Interrupt:
    """extra_loss hook that stops the run at a given step, like Ctrl-C would."""

    def __init__(self, at: int) -> None:
        self.at, self.calls = at, 0

    def __call__(self, heatmaps: torch.Tensor, batch: dict) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return heatmaps.new_zeros(())


def _straight_and_interrupted(tmp_path: Path, config: HourglassConfig) -> tuple[StackedHourglass, str, TrainConfig]:
    """A 6-step run done in one go, and the same run stopped at step 5 (last checkpoint: step 3)."""
    cfg = TrainConfig(steps=6, checkpoint_every=3, **FAST)
    straight = _model(config)
    train(straight, "synthetic", cfg, str(tmp_path / "a.pt"), progress=False)
    out = str(tmp_path / "b.pt")
    with pytest.raises(KeyboardInterrupt):
        train(_model(config), "synthetic", cfg, out, extra_loss=_Interrupt(at=5), progress=False)
    return straight, out, cfg


def _assert_same_weights(a: StackedHourglass, b: StackedHourglass) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


def test_resume_is_bit_for_bit(tmp_path: Path, tiny_config: HourglassConfig) -> None:
    straight, out, cfg = _straight_and_interrupted(tmp_path, tiny_config)
    assert checkpoint.load(out)[1].meta["step"] == 3
    resumed = _model(tiny_config, seed=123)  # different init: everything must come from the checkpoint
    result = train(resumed, "synthetic", cfg, out, resume=True, progress=False)
    assert result.step == 6 and len(result.history) == 6
    _assert_same_weights(straight, resumed)


def test_resume_reads_weights_from_the_state_file(tmp_path: Path, tiny_config: HourglassConfig) -> None:
    """A kill between the checkpoint write and the state write must not mix steps: the state file rules."""
    straight, out, cfg = _straight_and_interrupted(tmp_path, tiny_config)
    checkpoint.save(_model(tiny_config, seed=99), out, meta={"step": 4})  # a newer checkpoint, no state
    resumed = _model(tiny_config, seed=7)
    train(resumed, "synthetic", cfg, out, resume=True, progress=False)
    _assert_same_weights(straight, resumed)


def test_resume_with_other_settings_is_refused(tmp_path: Path, tiny_config: HourglassConfig) -> None:
    out = str(tmp_path / "m.pt")
    train(_model(tiny_config), "synthetic", TrainConfig(steps=2, **FAST), out, progress=False)
    with pytest.raises(HGCError, match="other settings .*lr"):
        train(_model(tiny_config), "synthetic", TrainConfig(steps=2, **{**FAST, "lr": 1e-2}), out, resume=True,
              progress=False)
    # 2 steps with drops at 0.75/0.9 of 2 ran step 1 at lr/10; 4 steps would have run it at lr
    with pytest.raises(HGCError, match="would change the learning rate"):
        train(_model(tiny_config), "synthetic", TrainConfig(steps=4, **FAST), out, resume=True, progress=False)


def test_extending_a_run_equals_the_longer_straight_run(tmp_path: Path, tiny_config: HourglassConfig) -> None:
    """4 steps dropping the LR at step 3, extended to 6 steps dropping at 3 (0.5 of 6): same as 6 straight."""
    longer = TrainConfig(steps=6, **FAST)  # FAST drops the LR at 0.5
    straight = _model(tiny_config)
    train(straight, "synthetic", longer, str(tmp_path / "a.pt"), progress=False)
    out = str(tmp_path / "b.pt")
    train(_model(tiny_config), "synthetic", TrainConfig(steps=4, **{**FAST, "lr_milestones": [0.75]}), out,
          progress=False)
    extended = _model(tiny_config, seed=5)
    result = train(extended, "synthetic", longer, out, resume=True, progress=False)
    assert result.step == 6 and [r["step"] for r in result.history] == list(range(1, 7))
    _assert_same_weights(straight, extended)


@pytest.mark.parametrize("bad, match", [({"sigma": 0.0}, "sigma"), ({"lr": 0.0}, "lr"),
                                        ({"workers": -1}, "workers"), ({"val_samples": 0}, "val_samples")])
def test_bad_training_settings(bad: dict, match: str) -> None:
    with pytest.raises(HGCError, match=match):
        TrainConfig(**bad)


def test_output_problems_fail_before_training(tmp_path: Path, tiny_config: HourglassConfig) -> None:
    big = TrainConfig(steps=10**7, **FAST)  # would run for days if the check came at the end
    with pytest.raises(HGCError, match="does not exist"):
        train(_model(tiny_config), "synthetic", big, str(tmp_path / "no" / "m.pt"), progress=False)
    with pytest.raises(HGCError, match="is a directory"):
        train(_model(tiny_config), "synthetic", big, str(tmp_path), progress=False)
    with pytest.raises(HGCError, match="split is for evaluation"):
        train(_model(tiny_config), "synthetic:val", big, str(tmp_path / "m.pt"), progress=False)


def test_resume_without_checkpoint_is_an_error(tmp_path: Path, tiny_config: HourglassConfig) -> None:
    with pytest.raises(HGCError, match="no checkpoint to resume"):
        train(_model(tiny_config), "synthetic", TrainConfig(steps=2, **FAST), str(tmp_path / "x.pt"),
              resume=True, progress=False)


def test_nan_loss_stops_and_names_last_good_checkpoint(tmp_path: Path, tiny_config: HourglassConfig) -> None:
    out = str(tmp_path / "m.pt")
    calls = []

    def poison(heatmaps: torch.Tensor, batch: dict) -> torch.Tensor:
        calls.append(1)
        return heatmaps.new_tensor(float("nan") if len(calls) == 4 else 0.0)

    with pytest.raises(HGCError, match=r"loss became nan at step 4; last good checkpoint: .*m.pt \(step 2\)"):
        train(_model(tiny_config), "synthetic", TrainConfig(steps=6, checkpoint_every=2, **FAST), out,
              extra_loss=poison, progress=False)
    assert checkpoint.load(out)[1].meta["step"] == 2


def test_distill_loss_is_the_fpd_mix() -> None:
    student = torch.rand(2, 2, 16, 4, 4)
    teacher, target, weight = torch.rand(2, 16, 4, 4), torch.rand(2, 16, 4, 4), torch.ones(2, 16)
    soft = ((student - teacher[:, None]) ** 2).mean(dim=(0, 2, 3, 4)).sum()
    hard = heatmap_loss(student, target, weight)
    assert torch.allclose(distill_loss(student, teacher, target, weight, 0.3), 0.3 * soft + 0.7 * hard)
    assert torch.allclose(distill_loss(student, teacher, target, weight, 0.0), hard)


def test_distillation_pulls_student_toward_teacher(tmp_path: Path, tiny_config: HourglassConfig) -> None:
    teacher = _model(tiny_config, seed=5).eval()
    student = _model(tiny_config, seed=6)
    x = torch.rand(4, 3, 32, 32)
    before = ((student.eval()(x)[:, -1] - teacher(x)[:, -1]) ** 2).mean()
    train(student, "synthetic", TrainConfig(steps=10, distill_alpha=1.0, **FAST), str(tmp_path / "s.pt"),
          teacher=teacher, progress=False)
    after = ((student.eval()(x)[:, -1] - teacher(x)[:, -1]) ** 2).mean()
    assert after < before


DDP_SCRIPT = textwrap.dedent("""
    import os, sys, torch
    from compress.nets.config import HourglassConfig
    from compress.nets.hourglass import StackedHourglass
    from compress.train import TrainConfig, train
    torch.manual_seed(0)
    model = StackedHourglass(HourglassConfig(stacks=1, features=16, depth=2, input_size=32))
    out = sys.argv[1]
    result = train(model, "synthetic", TrainConfig(steps=8, batch_size=2, lr=1e-3, lr_milestones=[0.5]),
                   os.path.join(out, "ddp.pt"), progress=False)
    rank = int(os.environ["RANK"])
    torch.save({"state": model.state_dict(), "losses": [r["loss"] for r in result.history]},
               os.path.join(out, f"rank{rank}.pt"))
""")


def test_ddp_two_cpu_processes_agree(tmp_path: Path) -> None:
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
         str(script), str(tmp_path)], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for key, a in ranks[0]["state"].items():
        assert torch.equal(a, ranks[1]["state"][key]), key
    losses = ranks[0]["losses"]
    assert sum(losses[-2:]) < sum(losses[:2])
    assert (tmp_path / "ddp.pt").is_file()
