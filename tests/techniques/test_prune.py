"""Structured pruning: real smaller networks across the family, plans that match, bad input refused early."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from compress.cli import main as cli
from compress.errors import HGCError
from compress.measure.cost import count_macs, count_params, load_onnx, onnx_macs
from compress.nets import checkpoint
from compress.nets.config import HourglassConfig
from compress.nets.hourglass import StackedHourglass
from compress.recipe import parse_recipe
from compress.runner import run_recipe
from compress.steps import StepContext
from compress.techniques.prune import PruneParams, latency, plan_channels, prune, prune_checkpoint
from compress.techniques.prune import op as op_module
from compress.techniques.prune.importance import slimming_loss
from compress.train import TrainConfig, train_new

ROOT = Path(__file__).resolve().parents[2]
TINY = {"stacks": 1, "features": 32, "depth": 2, "input_size": 32}
RELOAD = """
import sys, torch
from compress.nets import checkpoint
model, info = checkpoint.load(sys.argv[1])
torch.manual_seed(0)
torch.set_num_threads(1)  # as the test's own process: the same reduction order, so bit-equal outputs
with torch.no_grad():
    torch.save(model(torch.rand(2, 3, info.config.input_size, info.config.input_size)), sys.argv[2])
"""


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny hourglass (32 features) trained for a few steps: its weights are no longer the initial ones."""
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("prune") / "tiny.pt"
    train_new(HourglassConfig(**TINY), "synthetic", TrainConfig(steps=6, batch_size=4, lr=1e-3), str(path),
              progress=False)
    return path


@pytest.fixture(scope="module")
def pruned(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The ``prune`` op on the trained model: network slimming (2 penalised steps), then 2 iterations ranked by
    BatchNorm scale, each followed by 2 distilled fine-tuning steps."""
    torch.set_num_threads(1)
    step_dir = tmp_path_factory.mktemp("step")
    base, _ = checkpoint.load(trained)
    params = PruneParams.build({"ratio": 0.5, "round_to": 8, "iterations": 2, "schedule": "linear",
                                "importance": "bn_scale", "slimming": {"l1": 1e-3, "steps": 2},
                                "finetune": {"steps": 2, "batch_size": 4, "checkpoint_every": 1}}, "test")
    ctx = StepContext(step_dir=step_dir, data="synthetic:train", progress=False,
                      teacher_loader=lambda: checkpoint.load(trained)[0])
    result = prune(base, params, ctx)
    return {"model": result.model, "metrics": result.metrics, "dir": step_dir, "base": checkpoint.load(trained)[0]}


def _net(**changes) -> StackedHourglass:
    torch.manual_seed(0)
    return StackedHourglass(HourglassConfig(**{**TINY, **changes}))


NETS = {
    "bottleneck": {},
    "two-stacks": {"stacks": 2},
    "deconv": {"upsample": "deconv"},
    "concat": {"skip": "concat", "stacks": 2},
    "group-norm": {"norm": "group"},
    **{block: {"block": block} for block in ("dws", "multidilated", "dice", "hru", "gated", "bottleneck4")},
}


@pytest.mark.parametrize("net, heads", [(net, "whole") for net in sorted(NETS)]
                         + [("two-stacks", "joints"), ("concat", "joints")])
def test_plans_match_the_pruned_network_for_every_block_and_option(net: str, heads: str, tmp_path: Path) -> None:
    model = _net(**NETS[net])
    params = PruneParams.build({"round_to": 8, "heads": heads, "scope": "global" if net == "hru" else "local"}, "t")
    plan = plan_channels(model, params, 0.5)
    pruned_model = plan.model
    size = model.config.input_size
    assert plan.macs_before == count_macs(model, size) and plan.macs_after == count_macs(pruned_model, size)
    assert plan.macs_after < plan.macs_before and plan.params_after < plan.params_before
    layers = dict(pruned_model.named_modules())
    changed = 0
    for row in plan.rows:
        layer = layers[row.layer]
        assert (row.out_after, row.in_after) == (layer.out_channels, layer.in_channels)
        if row.out_after != row.out_before:
            changed += 1
            assert row.out_after % 8 == 0 and row.out_after > 0 and not row.note
    assert changed > 0
    before = dict(model.named_modules())
    for name, layer in pruned_model.named_modules():  # joints are never touched; "whole" keeps every weight
        if name.endswith((".score", ".heatmaps")):
            joints = layer.out_channels if name.endswith(".score") else layer.in_channels
            assert joints == model.config.joints
            if heads == "whole":
                assert layer.weight.shape == before[name].weight.shape
    checkpoint.save(pruned_model, tmp_path / "p.pt")
    again, info = checkpoint.load(tmp_path / "p.pt")
    assert info.config.widths
    image = torch.rand(1, 3, size, size)
    with torch.no_grad():
        assert torch.equal(again(image), pruned_model.eval()(image))


def test_the_op_prunes_finetunes_and_the_result_reloads_in_a_new_process_and_exports_smaller(
        pruned: dict, tmp_path: Path) -> None:
    model, metrics, base = pruned["model"], pruned["metrics"], pruned["base"]
    size = model.config.input_size
    assert count_macs(model, size) < count_macs(base, size)
    slimming, *iterations = metrics["iterations"]
    assert slimming["slimming"]["steps"] == 2
    assert [h["iteration"] for h in iterations] == [1, 2] and [h["finetune"]["steps"] for h in iterations] == [2, 2]
    assert iterations[0]["channel_ratio"] == pytest.approx(0.25) and iterations[1]["channel_ratio"] == 0.5
    assert metrics["channels_removed"] == 0.5
    log = [json.loads(line) for line in (pruned["dir"] / "log.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in log if r.get("event") == "finetune"] == [0, 0, 1, 1, 2, 2]
    assert all(spec[0] % 8 == 0 for name, spec in model.config.widths.items() if "conv" in name)
    path = tmp_path / "pruned.pt"
    checkpoint.save(model, path)
    torch.manual_seed(0)
    image = torch.rand(2, 3, size, size)
    with torch.no_grad():
        expected = model.eval()(image)
    subprocess.run([sys.executable, "-c", RELOAD, str(path), str(tmp_path / "out.pt")], check=True, cwd=ROOT)
    assert torch.equal(torch.load(tmp_path / "out.pt", weights_only=True), expected)
    onnx_file = pruned["dir"] / "pruned.onnx"  # the op's own export, checked for parity before it returned
    assert metrics["parity_max_abs_diff"] <= 1e-4 and onnx_file.stat().st_size == metrics["onnx_bytes"]
    # an fp32 ONNX file of the unpruned net holds at least 4 bytes per parameter
    assert metrics["onnx_bytes"] < 4 * count_params(base)


@pytest.mark.parametrize("text, message", [
    ("{ratio: 0}", "steps[0].prune.ratio: 0.0 must lie in (0, 1)"),
    ("{ratio: 1.0}", "steps[0].prune.ratio: 1.0 must lie in (0, 1)"),
    ("{ratio: 1.5}", "steps[0].prune.ratio: 1.5 is outside"),
    ("{ratio: 0.8, max_ratio: 0.5}", "steps[0].prune.ratio: 0.8 exceeds max_ratio 0.5"),
    ("{round_to: 0}", "steps[0].prune.round_to: 0 is outside"),
    ("{slimming: {l1: 1e-4}}", "steps[0].prune.slimming: applies to importance bn_scale"),
    ("{target: flops}", "steps[0].prune.target: 'flops' is not one of channels, macs, latency"),
])
def test_bad_recipe_values_are_one_line_with_the_recipe_path(text: str, message: str) -> None:
    with pytest.raises(HGCError) as info:
        parse_recipe({"steps": [{"prune": yaml.safe_load(text)}]}, "r.yaml")
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("settings, message", [
    ({"round_to": 64}, "round_to: 64 would leave every prunable layer with no channels"),
    ({"target": "macs", "ratio": 0.97}, "ratio: removing 97.0% of the MACs is out of reach"),
    ({"exclude": ["*"]}, "nothing to prune: every channel group is kept whole"),
    ({"exclude": ["stacks.*.scor"]}, "prune.exclude[0]: 'stacks.*.scor' matches no convolution"),
])
def test_impossible_requests_fail_before_anything_is_written(trained: Path, tmp_path: Path, settings: dict,
                                                             message: str) -> None:
    out = tmp_path / "out.pt"
    with pytest.raises(HGCError) as info:
        prune_checkpoint(str(trained), str(out), **settings)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_recipe_with_an_impossible_round_to_stops_before_the_step_saves_anything(trained: Path,
                                                                                  tmp_path: Path) -> None:
    recipe = parse_recipe({"name": "bad", "steps": [{"prune": {"round_to": 64}}], "measure": {"runtimes": []}}, "b")
    with pytest.raises(HGCError, match="round_to: 64 would leave"):
        run_recipe(recipe, checkpoint=str(trained), out=str(tmp_path), progress=False)
    assert not list(tmp_path.rglob("model.pt")) and not list(tmp_path.rglob("*.onnx"))


def _quick_export(model: torch.nn.Module, path: Path, _data: str) -> str:
    """The legacy exporter: these tests are about the search, not the exporter."""
    size = model.config.input_size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter's deprecation notices
        torch.onnx.export(model.eval(), (torch.rand(1, 3, size, size),), str(path), dynamo=False, opset_version=17)
    return str(path)


def test_an_unreachable_latency_cut_is_refused_after_timing_the_most_pruned_candidate(
        trained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(latency, "_export", _quick_export)
    with pytest.raises(HGCError, match=r"ratio: a 99% latency cut is out of reach: the most pruned candidate"):
        prune_checkpoint(str(trained), None, target="latency", ratio=0.99, round_to=8, latency_runs=5)


def test_the_latency_search_returns_the_lightest_timed_candidate_that_meets_the_cut(
        trained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def saved(reference: str, candidate: str, _params: PruneParams) -> float:  # "latency" ∝ MACs: deterministic
        return 1.0 - onnx_macs(load_onnx(candidate)) / onnx_macs(load_onnx(reference))

    monkeypatch.setattr(latency, "_export", _quick_export)
    monkeypatch.setattr(latency, "latency_removed", saved)
    model, _ = checkpoint.load(trained)
    params = PruneParams(target="latency", ratio=0.2, round_to=1, scope="global", latency_tries=6)
    found = latency.resolve_latency(model, params, "synthetic")
    met = [t for t in found.tries if t["latency_removed"] >= 0.2]
    assert len(found.tries) >= 3 and found.macs_ratio == pytest.approx(min(t["macs_removed"] for t in met), abs=1e-4)
    assert all(t["macs_removed"] < found.macs_ratio for t in found.tries if t["latency_removed"] < 0.2)


def test_hgc_prune_prints_the_plan_and_writes_nothing_without_out(trained: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    assert cli(["prune", str(trained), "--plan", "--round-to", "8", "--ratio", "0.5"]) == 0
    text = capsys.readouterr().out
    assert "stacks.0.score" in text and "a heatmap head or remap kept whole" in text
    assert "50.0% of their original" in text and "MACs:" in text
    assert cli(["prune", str(trained)]) == 2  # neither --plan nor -o
    assert "give --plan" in capsys.readouterr().err


def test_one_shot_taylor_pruning_ranks_by_gradients_and_writes_a_sound_file(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "taylor.pt"
    plan = prune_checkpoint(str(trained), str(out), importance="taylor", taylor_images=4, round_to=8,
                            scope="global", ratio=0.4)
    model, info = checkpoint.load(out)
    assert info.lineage[-1]["op"] == "prune" and info.lineage[-1]["params"]["importance"] == "taylor"
    assert count_macs(model, 32) == plan.macs_after < plan.macs_before


def test_slimming_penalises_the_batchnorm_scales_it_is_given() -> None:
    model = _net()
    norms = ["stem.res2.0.bn2", "stacks.0.res.0.bn3"]
    first, second = (model.get_submodule(n) for n in norms)
    with torch.no_grad():
        first.weight.fill_(-2.0)
    penalty = slimming_loss(model, norms, 0.01)(torch.zeros(1), {})
    assert penalty.item() == pytest.approx(0.01 * (2.0 * first.num_features + second.num_features))
    penalty.backward()
    assert torch.equal(first.weight.grad, torch.full_like(first.weight, -0.01))


def test_schedules_reach_the_target_at_the_last_iteration() -> None:
    linear = PruneParams(iterations=4, schedule="linear")
    cubic = PruneParams(iterations=4, schedule="cubic")
    assert [linear.schedule_fraction(t) for t in (1, 2, 3, 4)] == [0.25, 0.5, 0.75, 1.0]
    fractions = [cubic.schedule_fraction(t) for t in (1, 2, 3, 4)]
    assert fractions[0] == pytest.approx(1 - 0.75 ** 3) and fractions[-1] == 1.0 and fractions == sorted(fractions)


def test_a_killed_run_resumes_after_its_last_finished_phase(trained: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    params = PruneParams.build({"round_to": 8, "iterations": 2, "schedule": "linear",
                                "finetune": {"steps": 1, "batch_size": 2, "distill": None}}, "t")
    real_phase = op_module._phase
    calls = []

    def killed_in_phase_two(*args, **kwargs):
        calls.append(args[3])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_phase(*args, **kwargs)

    monkeypatch.setattr(op_module, "_phase", killed_in_phase_two)
    with pytest.raises(KeyboardInterrupt):
        prune(checkpoint.load(trained)[0], params, StepContext(step_dir=tmp_path, data="synthetic:train", progress=False))
    monkeypatch.setattr(op_module, "_phase", real_phase)
    monkeypatch.setattr(op_module, "_final_metrics", lambda *args: {"iterations": args[4]})  # no export: not tested here
    after_one = checkpoint.read_payload(tmp_path / "prune-state.pt")["meta"]
    assert after_one["prune_phases"] == 1 and after_one["prune_target"] == {"kind": "channels", "value": 0.5}
    assert (tmp_path / "phase0.pt").is_file()  # the first phase's checkpoint, made before the kill
    ctx = StepContext(step_dir=tmp_path, data="synthetic:train", progress=False, resume=True)
    result = prune(checkpoint.load(trained)[0], params, ctx)
    assert [h["iteration"] for h in result.metrics["iterations"]] == [1, 2]
    assert tmp_path / "phase0.pt" in ctx.scratch_files  # deleted by the runner with the resumed phase's files
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    resumed = log.index({"event": "resumed", "phases_done": 1})
    assert [r["iteration"] for r in log[resumed:] if r.get("event") == "prune"] == [2]  # iteration 1 not redone
