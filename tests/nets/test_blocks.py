"""Every registered residual block, checked the same way (like timm's test over every registered model).

For each block (norm batch/group, in == out and in != out): shapes, finite outputs and gradients; a
tiny 2-stack hourglass built with it trains a step and matches onnxruntime after export; its per-layer
widths round-trip through ``config.widths``, also after torch-pruning removes a quarter of its
channels (with ``pruning_hints``). Plus DiCE at every level and two input sizes, and the
parameter counts at the seeds' setting (``python -m compress.nets.seed_table``).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch_pruning as tp
from torch import nn

from compress.errors import HGCError
from compress.nets.blocks import block_names, build_block, pruning_hints
from compress.nets.blocks.dice import DiCEUnit
from compress.nets.blocks.gated import ChannelScale
from compress.nets.config import HourglassConfig
from compress.nets.hourglass import StackedHourglass
from compress.nets.seed_table import count_parameters, seed_parameter_table
from compress.nets.widths import apply_widths, derive_widths, layer_spec

BLOCKS = block_names()
OPSET = 17  # legacy TorchScript exporter: ~1 s per tiny net (the dynamo one takes ~10 s)


def tiny(block: str, input_size: int = 64, **changes: object) -> HourglassConfig:
    """2 stacks, 16 features, depth 2: every block type builds and runs in well under a second."""
    return HourglassConfig(stacks=2, features=16, depth=2, input_size=input_size, block=block, **changes)


def assert_finite_grads(module: nn.Module) -> None:
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"


def onnx_max_diff(model: nn.Module, image: torch.Tensor, path: Path) -> float:
    """Export ``model`` (eval mode) to ``path`` and return max |onnxruntime − torch| on ``image``."""
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice, tracer warnings
        torch.onnx.export(model, (image,), str(path), dynamo=False, opset_version=OPSET,
                          input_names=["image"], output_names=["heatmaps"])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"image": image.numpy()})
    with torch.no_grad():
        want = model(image).numpy()
    assert got.shape == want.shape
    return float(np.abs(got - want).max())


@pytest.mark.parametrize("side", [8, 5])
@pytest.mark.parametrize("cin, cout", [(16, 16), (8, 16)])
@pytest.mark.parametrize("norm", ["batch", "group"])
@pytest.mark.parametrize("name", BLOCKS)
def test_block_shapes_and_gradients(name: str, norm: str, cin: int, cout: int, side: int) -> None:
    block = build_block(name, cin, cout, norm, size=8)  # side 5: a map of another size than built for
    x = torch.randn(2, cin, side, side, requires_grad=True)
    out = block(x)
    assert out.shape == (2, cout, side, side)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert_finite_grads(block)


@pytest.mark.parametrize("name", BLOCKS)
def test_zero_init_last_makes_every_block_the_identity(name: str) -> None:
    """Swaps that append blocks start them as the identity, so every block must be able to start as one."""
    torch.manual_seed(0)
    block = build_block(name, 16, 16, "batch", size=8).train()
    block.zero_init_last()
    x = torch.randn(2, 16, 8, 8)
    out = block(x)
    assert torch.allclose(out, x, atol=1e-6)
    (out * torch.randn_like(out)).sum().backward()  # the zeroed layers still learn
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())


@pytest.mark.parametrize("name", BLOCKS)
def test_tiny_hourglass_trains_a_step(name: str) -> None:
    model = StackedHourglass(tiny(name))
    out = model(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 2, 16, 16, 16) and torch.isfinite(out).all()
    out.square().mean().backward()
    assert_finite_grads(model)
    print(f"\n{name}: {sum(p.numel() for p in model.parameters()):,} params (tiny: 2 stacks, 16 features)")


@pytest.mark.parametrize("name", BLOCKS)
def test_tiny_hourglass_onnx_parity(name: str, tmp_path: Path) -> None:
    model = StackedHourglass(tiny(name))
    diff = onnx_max_diff(model, torch.rand(1, 3, 64, 64), tmp_path / f"{name}.onnx")
    assert diff < 1e-4, f"{name}: max |onnxruntime - torch| = {diff:.2e}"


@pytest.mark.parametrize("name", BLOCKS)
def test_widths_of_every_layer_round_trip(name: str) -> None:
    """Each layer a block holds can be recorded in config.widths and rebuilt (here at its own spec)."""
    config = tiny(name)
    model = StackedHourglass(config).eval()
    widths = {n: spec for n, m in model.named_modules() if n and (spec := layer_spec(m)) is not None}
    rebuilt = StackedHourglass(config.replace(widths=widths)).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), rebuilt(x))


@pytest.mark.parametrize("name", BLOCKS)
def test_structured_pruning_then_widths_rebuild(name: str) -> None:
    config = tiny(name)
    model = StackedHourglass(config)
    image = torch.rand(1, 3, 64, 64)
    ignored, unwrapped = pruning_hints(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = tp.pruner.MagnitudePruner(model, image, importance=tp.importance.MagnitudeImportance(p=1),
                                           pruning_ratio=0.25, unwrapped_parameters=unwrapped or None,
                                           ignored_layers=ignored + [stack.score for stack in model.stacks])
        pruner.step()
    widths = derive_widths(model, StackedHourglass(config))
    assert widths, f"{name}: nothing was pruned"
    rebuilt = StackedHourglass(config.replace(widths=widths)).eval()
    rebuilt.load_state_dict(model.eval().state_dict())
    with torch.no_grad():
        assert torch.equal(model(image), rebuilt(image))


def test_gate_is_a_resizable_per_channel_parameter() -> None:
    block = build_block("gated", 8, 16, "batch")
    assert block.gate.alpha.shape == (1, 16, 1, 1)
    model = StackedHourglass(tiny("gated"))
    name = "stacks.0.hourglass.skip.0.gate"
    apply_widths(model, {name: [12]})
    gate = model.get_submodule(name)
    assert isinstance(gate, ChannelScale) and layer_spec(gate) == [12] and gate.alpha.shape == (1, 12, 1, 1)


@pytest.mark.parametrize("input_size", [64, 128])
def test_dice_runs_every_level_at_its_built_size(input_size: int) -> None:
    model = StackedHourglass(tiny("dice", input_size, block_args={"units": 2}))
    seen: list[tuple[int, int, int]] = []
    for unit in (m for m in model.modules() if isinstance(m, DiCEUnit)):
        unit.register_forward_pre_hook(
            lambda m, args: seen.append((args[0].shape[2], args[0].shape[3], m.height_conv.in_channels)))
    out = model(torch.rand(1, 3, input_size, input_size))
    assert out.shape == (1, 2, 16, input_size // 4, input_size // 4) and torch.isfinite(out).all()
    assert all(h == w == built for h, w, built in seen), "a DiCE unit resampled at its nominal input size"
    q = input_size // 4
    assert {h for h, _, _ in seen} == {2 * q, q, q // 2, q // 4}  # stem (½), heatmap size, both levels below


def test_dice_at_another_input_size_resamples_and_exports(tmp_path: Path) -> None:
    """A net built for 64×64 run at 96×96: every height/width conv resamples; onnxruntime agrees."""
    model = StackedHourglass(tiny("dice", 64))
    image = torch.rand(1, 3, 96, 96)
    out = model(image)
    assert out.shape == (1, 2, 16, 24, 24) and torch.isfinite(out).all()
    assert onnx_max_diff(model, image, tmp_path / "dice96.onnx") < 1e-4


@pytest.mark.parametrize("block, args, match", [
    ("multidilated", {"dilations": []}, "dilations"),
    ("multidilated", {"dilations": [1, 0]}, "dilations"),
    ("dice", {"units": 0}, "units"),
    ("dws", {"colour": 1}, "config.block_args for 'dws'"),
])
def test_bad_block_args_name_the_field(block: str, args: dict, match: str) -> None:
    with pytest.raises(HGCError, match=match):
        StackedHourglass(tiny(block, block_args=args))


# Our parameter counts at the seed setting (2 stacks, 256 features, depth 4, input 256, default stem);
# the README's "Lighter blocks" table shows them beside seed 000's.
EXPECTED_PARAMS = {
    "baseline": 6_730_912,
    "Multi": 3_882_144,
    "Multi5": 4_420_704,
    "Multi7": 4_959_264,
    "Dice1": 2_650_992,
    "Dice2": 3_035_520,
    "dws": 2_805_024,
    "hru": 24_423_520,
    "gated": 12_386_656,
    "bottleneck4": 11_203_168,
}


def test_seed_parameter_table() -> None:
    rows = {row.name: row for row in seed_parameter_table()}
    assert {name: row.params for name, row in rows.items()} == EXPECTED_PARAMS
    assert rows["baseline"].params == rows["baseline"].seed_params == 6_730_912
    # within ±10 % of seed 000 except Dice2 (see the README: a faithful second DiCE unit is lighter)
    assert all(abs(row.gap) < 0.10 for row in rows.values() if row.seed_params and row.name != "Dice2")
    assert count_parameters("bottleneck") == 6_730_912
