"""Peer checkpoint converters: every tensor lands in place and the heatmaps equal the peer's own forward.

The peer checkpoints are written here from the key layouts of princeton-vl ``PoseNet`` and bearpaw
``HourglassNet`` at a tiny width, and their forward passes are recomputed with ``torch.nn.functional``
straight from those keys (never through our modules), so the converter is checked against an
independent reading of each layout.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from compress.errors import HGCError
from compress.io import sha256_file
from compress.nets import checkpoint
from compress.nets.config import HourglassConfig
from compress.nets.convert import convert_checkpoint, convert_state, guess_layout
from compress.nets.hourglass import StackedHourglass

PP_MEAN = torch.tensor([0.4404, 0.4440, 0.4327]).view(1, 3, 1, 1)


# ---- peer state dicts, written from the peer key layouts -------------------------------------------------

class Maker:
    """Random, well-scaled tensors under peer key names (distinct values, so every tensor is traceable)."""

    def __init__(self, seed: int = 1) -> None:
        self.g = torch.Generator().manual_seed(seed)
        self.sd: dict[str, torch.Tensor] = {}

    def conv(self, key: str, cout: int, cin: int, k: int) -> None:
        self.sd[f"{key}.weight"] = torch.randn(cout, cin, k, k, generator=self.g) / (cin * k * k) ** 0.5
        self.sd[f"{key}.bias"] = 0.1 * torch.randn(cout, generator=self.g)

    def bn(self, key: str, c: int) -> None:
        self.sd[f"{key}.weight"] = 0.5 + torch.rand(c, generator=self.g)
        self.sd[f"{key}.bias"] = 0.2 * torch.randn(c, generator=self.g)
        self.sd[f"{key}.running_mean"] = 0.2 * torch.randn(c, generator=self.g)
        self.sd[f"{key}.running_var"] = 0.5 + torch.rand(c, generator=self.g)
        self.sd[f"{key}.num_batches_tracked"] = torch.tensor(len(self.sd) * 7919, dtype=torch.long)


def princeton_state(nstack: int = 2, inp_dim: int = 16, oup_dim: int = 16, depth: int = 2) -> dict:
    """Keys and shapes of ``PoseNet(nstack, inp_dim, oup_dim)`` with its hourglass depth set to ``depth``."""
    m = Maker(1)

    def residual(p: str, cin: int, cout: int) -> None:  # every Residual owns skip_layer, used or not
        m.bn(f"{p}.bn1", cin)
        m.conv(f"{p}.conv1.conv", cout // 2, cin, 1)
        m.bn(f"{p}.bn2", cout // 2)
        m.conv(f"{p}.conv2.conv", cout // 2, cout // 2, 3)
        m.bn(f"{p}.bn3", cout // 2)
        m.conv(f"{p}.conv3.conv", cout, cout // 2, 1)
        m.conv(f"{p}.skip_layer.conv", cout, cin, 1)

    def hourglass(p: str, n: int) -> None:
        residual(f"{p}.up1", inp_dim, inp_dim)
        residual(f"{p}.low1", inp_dim, inp_dim)
        hourglass(f"{p}.low2", n - 1) if n > 1 else residual(f"{p}.low2", inp_dim, inp_dim)
        residual(f"{p}.low3", inp_dim, inp_dim)

    m.conv("pre.0.conv", 64, 3, 7)
    m.bn("pre.0.bn", 64)
    residual("pre.1", 64, 128)
    residual("pre.3", 128, 128)
    residual("pre.4", 128, inp_dim)
    for i in range(nstack):
        hourglass(f"hgs.{i}.0", depth)
        residual(f"features.{i}.0", inp_dim, inp_dim)
        m.conv(f"features.{i}.1.conv", inp_dim, inp_dim, 1)
        m.bn(f"features.{i}.1.bn", inp_dim)
        m.conv(f"outs.{i}.conv", oup_dim, inp_dim, 1)
    for i in range(nstack - 1):
        m.conv(f"merge_features.{i}.conv.conv", inp_dim, inp_dim, 1)
        m.conv(f"merge_preds.{i}.conv.conv", inp_dim, oup_dim, 1)
    return m.sd


def pytorch_pose_state(stacks: int = 2, blocks: int = 2, classes: int = 16, ch: int = 16, depth: int = 2) -> dict:
    """Keys and shapes of ``HourglassNet(Bottleneck, stacks, blocks, classes)`` scaled to ``ch`` channels."""
    m = Maker(2)

    def bottleneck(p: str, cin: int, planes: int) -> None:
        m.bn(f"{p}.bn1", cin)
        m.conv(f"{p}.conv1", planes, cin, 1)
        m.bn(f"{p}.bn2", planes)
        m.conv(f"{p}.conv2", planes, planes, 3)
        m.bn(f"{p}.bn3", planes)
        m.conv(f"{p}.conv3", 2 * planes, planes, 1)
        if cin != 2 * planes:
            m.conv(f"{p}.downsample.0", 2 * planes, cin, 1)

    m.conv("conv1", ch // 4, 3, 7)
    m.bn("bn1", ch // 4)
    bottleneck("layer1.0", ch // 4, ch // 4)
    bottleneck("layer2.0", ch // 2, ch // 2)
    bottleneck("layer3.0", ch, ch // 2)
    for i in range(stacks):
        for level in range(depth):
            for branch in range(4 if level == 0 else 3):
                for b in range(blocks):
                    bottleneck(f"hg.{i}.hg.{level}.{branch}.{b}", ch, ch // 2)
        for b in range(blocks):
            bottleneck(f"res.{i}.{b}", ch, ch // 2)
        m.conv(f"fc.{i}.0", ch, ch, 1)
        m.bn(f"fc.{i}.1", ch)
        m.conv(f"score.{i}", classes, ch, 1)
        if i < stacks - 1:
            m.conv(f"fc_.{i}", ch, ch, 1)
            m.conv(f"score_.{i}", ch, classes, 1)
    return m.sd


# ---- independent functional forwards over the peer keys --------------------------------------------------

def _conv(sd: dict, key: str, x: torch.Tensor, stride: int = 1) -> torch.Tensor:
    w = sd[f"{key}.weight"]
    return F.conv2d(x, w, sd[f"{key}.bias"], stride=stride, padding=w.shape[-1] // 2)


def _bn(sd: dict, key: str, x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(x, sd[f"{key}.running_mean"], sd[f"{key}.running_var"], sd[f"{key}.weight"],
                        sd[f"{key}.bias"], training=False, eps=1e-5)


def _preact(sd: dict, p: str, x: torch.Tensor, conv_names: tuple[str, str, str], skip: str) -> torch.Tensor:
    out = x
    for j, name in enumerate(conv_names, 1):
        out = _conv(sd, name, F.relu(_bn(sd, f"{p}.bn{j}", out)))
    widen = sd[f"{conv_names[0]}.weight"].shape[1] != sd[f"{conv_names[2]}.weight"].shape[0]
    return out + (_conv(sd, skip, x) if widen else x)


def princeton_forward(sd: dict, imgs_nhwc: torch.Tensor, nstack: int, depth: int) -> torch.Tensor:
    """PoseNet's forward read off its keys: N×H×W×3 in [0, 1] → N×stacks×joints×H/4×W/4."""
    def res(p: str, x: torch.Tensor) -> torch.Tensor:
        return _preact(sd, p, x, (f"{p}.conv1.conv", f"{p}.conv2.conv", f"{p}.conv3.conv"), f"{p}.skip_layer.conv")

    def hourglass(p: str, n: int, x: torch.Tensor) -> torch.Tensor:
        low = res(f"{p}.low1", F.max_pool2d(x, 2, 2))
        low = hourglass(f"{p}.low2", n - 1, low) if n > 1 else res(f"{p}.low2", low)
        return res(f"{p}.up1", x) + F.interpolate(res(f"{p}.low3", low), scale_factor=2, mode="nearest")

    x = imgs_nhwc.permute(0, 3, 1, 2)
    x = res("pre.1", F.relu(_bn(sd, "pre.0.bn", _conv(sd, "pre.0.conv", x, stride=2))))
    x = res("pre.4", res("pre.3", F.max_pool2d(x, 2, 2)))
    outs = []
    for i in range(nstack):
        feature = res(f"features.{i}.0", hourglass(f"hgs.{i}.0", depth, x))
        feature = F.relu(_bn(sd, f"features.{i}.1.bn", _conv(sd, f"features.{i}.1.conv", feature)))
        preds = _conv(sd, f"outs.{i}.conv", feature)
        outs.append(preds)
        if i < nstack - 1:
            x = x + _conv(sd, f"merge_preds.{i}.conv.conv", preds) + _conv(sd, f"merge_features.{i}.conv.conv", feature)
    return torch.stack(outs, 1)


def pytorch_pose_forward(sd: dict, x: torch.Tensor, stacks: int, blocks: int, depth: int) -> torch.Tensor:
    """HourglassNet's forward read off its keys: mean-subtracted N×3×H×W → N×stacks×joints×H/4×W/4."""
    def bottleneck(p: str, x: torch.Tensor) -> torch.Tensor:
        return _preact(sd, p, x, (f"{p}.conv1", f"{p}.conv2", f"{p}.conv3"), f"{p}.downsample.0")

    def group(p: str, x: torch.Tensor) -> torch.Tensor:
        for b in range(blocks):
            x = bottleneck(f"{p}.{b}", x)
        return x

    def hourglass(i: int, n: int, x: torch.Tensor) -> torch.Tensor:
        p = f"hg.{i}.hg.{n - 1}"
        low = group(f"{p}.1", F.max_pool2d(x, 2, stride=2))
        low = hourglass(i, n - 1, low) if n > 1 else group(f"{p}.3", low)
        return group(f"{p}.0", x) + F.interpolate(group(f"{p}.2", low), scale_factor=2)

    x = bottleneck("layer1.0", F.relu(_bn(sd, "bn1", _conv(sd, "conv1", x, stride=2))))
    x = bottleneck("layer3.0", bottleneck("layer2.0", F.max_pool2d(x, 2, stride=2)))
    out = []
    for i in range(stacks):
        y = group(f"res.{i}", hourglass(i, depth, x))
        y = F.relu(_bn(sd, f"fc.{i}.1", _conv(sd, f"fc.{i}.0", y)))
        score = _conv(sd, f"score.{i}", y)
        out.append(score)
        if i < stacks - 1:
            x = x + _conv(sd, f"fc_.{i}", y) + _conv(sd, f"score_.{i}", score)
    return torch.stack(out, 1)


# ---- helpers ---------------------------------------------------------------------------------------------

def save_peer(path: Path, sd: dict, prefix: str = "", wrapped: bool = True) -> Path:
    """Write a peer file the way its trainer does: {'state_dict', 'optimizer', 'epoch'} with a prefix."""
    state = {prefix + k: v for k, v in sd.items()}
    torch.save({"state_dict": state, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3}]}, "epoch": 3}
               if wrapped else state, path)
    return path


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha1(t.contiguous().numpy().tobytes() + str(t.dtype).encode()).hexdigest()


def assert_every_tensor_landed(peer: dict, ours: dict, dropped: list[str]) -> None:
    """Each kept peer tensor appears in our state dict exactly once, value for value; nothing else does."""
    where = {}
    for key, tensor in ours.items():
        if not key.startswith("normalize."):
            assert _digest(tensor) not in where, f"{key} duplicates {where.get(_digest(tensor))}"
            where[_digest(tensor)] = key
    kept = [k for k in peer if k not in set(dropped)]
    assert len(kept) == len(where) == len(peer) - len(dropped)
    assert all(_digest(peer[k]) in where for k in kept), [k for k in kept if _digest(peer[k]) not in where][:3]


# ---- tests -----------------------------------------------------------------------------------------------

def test_princeton_conversion_matches_the_peer_forward(tmp_path: Path) -> None:
    sd = princeton_state()
    src = save_peer(tmp_path / "checkpoint.pt", sd, prefix="model.module.")
    result = convert_checkpoint(src, "princeton", tmp_path / "hgc.pt", input_size=32)
    # unused identity skips: pre.3, and per stack 3·depth + 1 hourglass residuals + features.i.0
    assert len(result.dropped) == 2 * (1 + 2 * (3 * 2 + 1 + 1))
    assert all(k.endswith(("skip_layer.conv.weight", "skip_layer.conv.bias")) for k in result.dropped)
    assert result.mapped == len(sd) - len(result.dropped) and result.prefix == "model.module."
    model, info = checkpoint.load(tmp_path / "hgc.pt")
    assert (info.config.stem, info.config.stacks, info.config.features, info.config.depth) == ("princeton", 2, 16, 2)
    assert_every_tensor_landed(sd, model.state_dict(), result.dropped)
    state = model.state_dict()
    for peer_key, our_key in [("pre.0.conv.weight", "stem.conv.0.weight"),
                              ("pre.4.skip_layer.conv.bias", "stem.res3.0.skip.bias"),
                              ("hgs.1.0.low2.low2.conv3.conv.weight", "stacks.1.hourglass.inner.inner.0.conv3.weight"),
                              ("hgs.0.0.low2.up1.bn2.running_var", "stacks.0.hourglass.inner.skip.0.bn2.running_var"),
                              ("merge_preds.0.conv.conv.weight", "merges.0.heatmaps.weight"),
                              ("features.1.1.bn.weight", "stacks.1.head.1.weight")]:
        assert torch.equal(sd[peer_key], state[our_key]), (peer_key, our_key)
    images = torch.rand(2, 32, 32, 3)
    with torch.no_grad():
        got = model(images.permute(0, 3, 1, 2))
    assert (got - princeton_forward(sd, images, 2, 2)).abs().max() <= 1e-5
    assert [(s["op"], s["parent_sha256"]) for s in info.lineage] == [("convert", sha256_file(src))]
    assert info.lineage[0]["params"]["source"] == "princeton" and "N×H×W×3" in info.meta["input_convention"]


# std as powers of two: x / std and InputNorm's x · (1 / std) then round alike (otherwise a 1-ulp input
# difference, amplified by the random net, would blur the exactness this test checks)
@pytest.mark.parametrize("mean, std", [(None, None), ((0.5, 0.4, 0.3), (0.5, 0.25, 2.0))])
def test_pytorch_pose_conversion_matches_the_peer_forward(tmp_path: Path, mean, std) -> None:
    sd = pytorch_pose_state(stacks=2, blocks=2)
    src = save_peer(tmp_path / "model_best.pth.tar", sd, prefix="module.")
    result = convert_checkpoint(src, "pytorch-pose", tmp_path / "hgc.pt", input_size=32, mean=mean, std=std)
    assert result.dropped == [] and result.mapped == len(sd)
    model, info = checkpoint.load(tmp_path / "hgc.pt")
    assert (info.config.stem, info.config.modules, info.config.stacks) == ("pytorch-pose", 2, 2)
    assert_every_tensor_landed(sd, model.state_dict(), [])
    state = model.state_dict()
    assert torch.equal(sd["hg.1.hg.0.3.1.conv2.weight"], state["stacks.1.hourglass.inner.inner.1.conv2.weight"])
    assert torch.equal(sd["hg.0.hg.1.2.0.bn1.bias"], state["stacks.0.hourglass.post.0.bn1.bias"])
    images = torch.rand(2, 3, 32, 32)
    if mean is None:
        peer_input = images - PP_MEAN  # pytorch-pose's color_normalize: subtract the mean, no std
    else:
        peer_input = (images - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        got = model(images)
    assert (got - pytorch_pose_forward(sd, peer_input, 2, 2, 2)).abs().max() <= 1e-5


@pytest.mark.parametrize("prefix", ["", "module.", "model.module."])
def test_bare_state_dicts_and_wrapper_prefixes(tmp_path: Path, prefix: str) -> None:
    sd = pytorch_pose_state(stacks=1, blocks=1)
    src = save_peer(tmp_path / "bare.pt", sd, prefix=prefix, wrapped=False)
    result = convert_checkpoint(src, "pytorch-pose", tmp_path / "hgc.pt", input_size=32)
    assert result.prefix == prefix and result.mapped == len(sd)


def test_missing_batch_counters_are_filled(tmp_path: Path) -> None:
    sd = {k: v for k, v in pytorch_pose_state(stacks=1, blocks=1).items() if not k.endswith("num_batches_tracked")}
    model, report = convert_state(sd, "pytorch-pose", input_size=32)
    assert report["filled"] and report["mapped"] == len(sd)


def _error(state: dict, source: str) -> str:
    with pytest.raises(HGCError) as exc:
        convert_state(state, source, input_size=32)
    assert "\n" not in str(exc.value)
    return str(exc.value)


def test_keys_from_neither_layout() -> None:
    msg = _error({"backbone.layer.weight": torch.zeros(3), "head.bias": torch.zeros(1)}, "princeton")
    assert "neither" in msg and "backbone.layer.weight" in msg
    assert guess_layout(["stem.conv.0.weight"]) == "hgc"


def test_wrong_source_names_the_guessed_layout() -> None:
    msg = _error(princeton_state(nstack=1), "pytorch-pose")
    assert "princeton layout" in msg and "--from princeton" in msg


def test_missing_and_unexpected_keys_are_named() -> None:
    sd = princeton_state()
    del sd["hgs.0.0.up1.bn1.weight"]
    sd["hgs.0.0.extra.weight"] = torch.zeros(1)
    msg = _error(sd, "princeton")
    assert "guessed the princeton layout" in msg and "2 stacks, 16 features, depth 2" in msg
    assert "1 missing key(s): 'hgs.0.0.up1.bn1.weight'" in msg and "1 unexpected key(s): 'hgs.0.0.extra.weight'" in msg


@pytest.mark.parametrize("source, key, shape", [
    ("princeton", "features.0.1.conv.weight", (8, 16, 1, 1)),
    ("princeton", "pre.0.conv.weight", (32, 3, 7, 7)),           # not the port's fixed 64-wide stem
    ("princeton", "hgs.0.0.up1.skip_layer.conv.weight", (16, 8, 1, 1)),
    ("pytorch-pose", "conv1.weight", (8, 3, 7, 7)),
])
def test_shapes_that_do_not_form_a_hourglass(source: str, key: str, shape: tuple) -> None:
    sd = princeton_state() if source == "princeton" else pytorch_pose_state()
    sd[key] = torch.zeros(shape)
    msg = _error(sd, source)
    assert f"guessed the {source} layout" in msg and key in msg and str(shape) in msg


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    pickled = tmp_path / "pickled.pt"
    torch.save(torch.nn.Conv2d(1, 1, 1), pickled)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    ours = tmp_path / "ours.pt"
    checkpoint.save(StackedHourglass(HourglassConfig(stacks=1, features=16, depth=2, input_size=32)), ours)
    for path, words in [(pickled, "refused"), (garbage, "not a readable"), (ours, "already an hgc"),
                        (tmp_path / "absent.pt", "no such")]:
        with pytest.raises(HGCError, match=words):
            convert_checkpoint(path, "princeton", tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_princeton_stem_config_and_unknown_stem() -> None:
    model = StackedHourglass(HourglassConfig(stacks=1, features=16, depth=2, input_size=32, stem="princeton"))
    names = {n for n, _ in model.stem.named_children()}
    assert names == {"conv", "res1", "res2", "res3"} and model.stem.conv[0].out_channels == 64
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 1, 16, 8, 8)
    with pytest.raises(HGCError, match="config.stem"):
        StackedHourglass(HourglassConfig(stacks=1, features=16, depth=2, input_size=32, stem="nope"))
