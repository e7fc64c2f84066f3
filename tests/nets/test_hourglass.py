"""The hourglass family: the pinned hg_s2_b1 layout, shapes, config variants, widths rebuild."""
from __future__ import annotations

import pytest
import torch

from compress.errors import HGCError
from compress.measure import count_macs, count_params
from compress.nets.config import HourglassConfig
from compress.nets.hourglass import StackedHourglass
from compress.nets.widths import derive_widths


def test_default_config_reproduces_hg_s2_b1() -> None:
    model = StackedHourglass(HourglassConfig())
    params = count_params(model)
    assert abs(params - 6.73e6) / 6.73e6 < 0.01, params
    macs = count_macs(model, 256)
    print(f"hg_s2_b1: {params / 1e6:.3f} M params, {macs / 1e9:.2f} GMACs @256")
    assert 8.5e9 < macs < 9.5e9


@pytest.mark.parametrize("variant", [
    {},
    {"upsample": "deconv"},
    {"skip": "concat"},
    {"norm": "group"},
    {"depth": [2, 1], "stacks": 2},
    {"modules": 2},
    {"intermediate": False, "stacks": 2},
    {"input": {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2]}},
])
def test_variants_forward_backward(tiny_config: HourglassConfig, variant: dict) -> None:
    config = HourglassConfig.from_dict({**tiny_config.to_dict(), **variant})
    model = StackedHourglass(config)
    out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, config.stacks, 16, 8, 8)
    out.mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_config_json_round_trip(tiny2_config: HourglassConfig) -> None:
    data = tiny2_config.to_dict()
    assert HourglassConfig.from_dict(data) == tiny2_config


@pytest.mark.parametrize("bad, field", [
    ({"block": "nope"}, "config.block"),
    ({"stacks": 0}, "config.stacks"),
    ({"depth": [2, 2, 2]}, "config.depth"),
    ({"upsample": "bilinear"}, "config.upsample"),
    ({"input_size": 36}, "config.input_size"),
    ({"colour": 1}, "unknown key"),
])
def test_bad_configs_name_the_field(tiny_config: HourglassConfig, bad: dict, field: str) -> None:
    with pytest.raises(HGCError, match=field):
        StackedHourglass(HourglassConfig.from_dict({**tiny_config.to_dict(), **bad}))


def test_widths_rebuild_a_narrowed_model(tiny_config: HourglassConfig) -> None:
    model = StackedHourglass(tiny_config)
    block = model.stacks[0].hourglass.skip[0]
    block.conv1 = torch.nn.Conv2d(16, 5, 1)
    block.bn2 = torch.nn.BatchNorm2d(5)
    block.conv2 = torch.nn.Conv2d(5, 5, 3, padding=1)
    block.bn3 = torch.nn.BatchNorm2d(5)
    block.conv3 = torch.nn.Conv2d(5, 16, 1)
    widths = derive_widths(model, StackedHourglass(tiny_config))
    assert widths == {"stacks.0.hourglass.skip.0.conv1": [5, 16, 1], "stacks.0.hourglass.skip.0.bn2": [5],
                      "stacks.0.hourglass.skip.0.conv2": [5, 5, 1], "stacks.0.hourglass.skip.0.bn3": [5],
                      "stacks.0.hourglass.skip.0.conv3": [16, 5, 1]}
    rebuilt = StackedHourglass(tiny_config.replace(widths=widths))
    rebuilt.load_state_dict(model.state_dict())
    model.eval(), rebuilt.eval()
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(model(x), rebuilt(x))


def test_widths_naming_a_missing_layer_is_an_error(tiny_config: HourglassConfig) -> None:
    with pytest.raises(HGCError, match="no layer named"):
        StackedHourglass(tiny_config.replace(widths={"stacks.9.conv": [1, 1, 1]}))
