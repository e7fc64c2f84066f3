"""``compact_floats``: BatchNorm folding keeps the function; float16 rounding keeps codebooks, zeros and ranges."""
from __future__ import annotations

import pytest
import torch

from compress.nets.hourglass import StackedHourglass
from compress.packed.compact import compact_floats


def _trained_like(config) -> StackedHourglass:
    """A tiny model whose BatchNorms have non-trivial statistics (a few training-mode forwards)."""
    torch.manual_seed(0)
    model = StackedHourglass(config)
    with torch.no_grad():
        for _ in range(3):
            model.train()(torch.rand(4, 3, 32, 32) * 3)
        for norm in model.modules():
            if isinstance(norm, torch.nn.BatchNorm2d):
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.uniform_(-0.2, 0.2)
    return model.eval()


def test_folding_alone_keeps_the_function(tiny_config) -> None:
    model = _trained_like(tiny_config)
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        want = model(images)[-1]
        report = compact_floats(model, floats="exact", fold_norms=True)
        got = model(images)[-1]
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert report.norms_folded == len(norms) > 0 and report.tensors_rounded == 0
    assert all(not n.running_mean.any() and torch.equal(n.running_var, torch.ones_like(n.running_var)) for n in norms)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_fp16_rounding_keeps_codebooks_zeros_and_range(tiny_config) -> None:
    model = _trained_like(tiny_config)
    conv = model.stem.conv[0]
    with torch.no_grad():
        conv.weight.copy_(torch.round(conv.weight * 7) / 7)  # ≤ 15 distinct values
        conv.weight[0].zero_()
        conv.bias[0] = 1e5  # beyond float16: that tensor stays float32
    uniques, zeros = conv.weight.unique().numel(), int((conv.weight == 0).sum())
    report = compact_floats(model, floats="fp16", fold_norms=False)
    assert conv.weight.unique().numel() <= uniques and int((conv.weight == 0).sum()) >= zeros
    assert not torch.signbit(conv.weight[0]).any()  # no negative zeros
    assert report.kept_fp32 == ["stem.conv.0.bias"] and conv.bias[0].item() == 1e5
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and name != "stem.conv.0.bias":
            assert torch.equal(tensor, tensor.half().float()), name
    assert 0 < report.max_relative_change <= 2 ** -11


def test_unknown_precision_is_refused(tiny_config) -> None:
    with pytest.raises(ValueError, match="floats 'bf16'"):
        compact_floats(StackedHourglass(tiny_config), floats="bf16")
