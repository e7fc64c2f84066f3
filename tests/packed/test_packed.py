"""The packed format: bit-identical round trips of plain, clustered, sparse and hashed models; damaged files."""
from __future__ import annotations

import hashlib
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from compress.errors import HGCError
from compress.nets import checkpoint
from compress.nets.hourglass import StackedHourglass
from compress.packed import CODER_CHOICES, coders, compare_coders, hashing, huffman, load_model, pack_model, stages
from compress.packed import format as container
from compress.packed.model import hashed_layers
from compress.steps import Budget, StepContext
from compress.techniques.pack import PackParams, pack


def _same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert sa[name].dtype == sb[name].dtype and torch.equal(sa[name], sb[name]), name


def _clustered(model: StackedHourglass, k: int, zero_fraction: float = 0.0) -> StackedHourglass:
    """Every conv weight replaced by k levels (and a share of exact zeros), as cluster/sparsify leave them."""
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                w = module.weight
                levels = torch.from_numpy(rng.normal(0, 0.05, k).astype(np.float32))
                values = levels[torch.randint(0, k, w.shape)]
                values[torch.rand(w.shape) < zero_fraction] = 0.0
                w.copy_(values)
    return model


@pytest.fixture
def model(tiny_config) -> StackedHourglass:
    net = StackedHourglass(tiny_config)
    with torch.no_grad():  # non-trivial norm statistics, some exactly fp16, some not
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(1234)
        net.stem.conv[1].bias.copy_(torch.arange(net.stem.conv[1].bias.numel()) * 0.5)  # exact in fp16
    return net.eval()


@pytest.mark.parametrize("kind, coder", [("plain", "ans"), ("clustered", "ans"), ("per_channel", "ans"),
                                         *[("sparse", name) for name in (*coders.NAMES, "best")]])
def test_pack_unpack_is_bit_identical(model, tmp_path: Path, coder: str, kind: str) -> None:
    if kind == "clustered":
        _clustered(model, 16)
    elif kind == "sparse":
        _clustered(model, 8, zero_fraction=0.8)
    elif kind == "per_channel":
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.Conv2d) and m.weight.shape[1] * m.weight[0, 0].numel() >= 64:
                    rows = m.weight.view(m.weight.shape[0], -1)
                    rows.copy_(torch.round(rows * 20) / 20 + torch.arange(rows.shape[0])[:, None] * 1e-3)
    path = tmp_path / "m.hgz"
    report = pack_model(model, path, meta={"note": "x"}, lineage=[{"op": "train"}], coder=coder)
    loaded, info = load_model(path)
    _same(model, loaded)
    assert report.bytes == path.stat().st_size and info.meta["note"] == "x" and info.lineage == [{"op": "train"}]
    expected = {"plain": "d", "clustered": "c", "sparse": "s", "per_channel": "C"}[kind]
    assert report.kinds.get(expected, 0) > 0, report.kinds


def test_sparse_zeros_survive_and_codebook_layers_shrink(model, tmp_path: Path) -> None:
    dense = pack_model(model, tmp_path / "d.hgz").bytes
    _clustered(model, 4, zero_fraction=0.9)
    zeros = {n: (p == 0) for n, p in model.state_dict().items() if n.endswith("weight") and p.dim() == 4}
    sparse = pack_model(model, tmp_path / "s.hgz")
    loaded, _ = load_model(tmp_path / "s.hgz")
    for name, mask in zeros.items():
        assert torch.equal(loaded.state_dict()[name] == 0, mask)
    assert sparse.bytes < dense / 4


def _hash_one_layer(model: StackedHourglass) -> tuple[torch.nn.Conv2d, int, int]:
    """Give ``stacks.0.res.0.conv2`` HashedNets weights (ratio 8, seed 7): (the conv, its seed, its buckets)."""
    conv = model.stacks[0].res[0].conv2
    seed, count = hashing.layer_seed(7, "stacks.0.res.0.conv2"), hashing.bucket_count(conv.weight.numel(), 8)
    values = np.random.default_rng(1).normal(0, 0.1, count).astype(np.float32)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(hashing.materialise(values, seed, tuple(conv.weight.shape))))
    return conv, seed, count


def test_hashed_layer_rebuilds_from_buckets_and_seed_alone(model, tmp_path: Path) -> None:
    conv, seed, count = _hash_one_layer(model)
    rebuilt = hashing.materialise(hashing.recover(conv.weight.detach().numpy(), seed, count), seed, tuple(conv.weight.shape))
    assert np.array_equal(rebuilt, conv.weight.detach().numpy())
    lineage = [{"op": "hash", "params": {"ratio": 8.0, "seed": 7}}]
    assert hashed_layers(model.state_dict(), lineage)["stacks.0.res.0.conv2.weight"] == (seed, count)
    pack_model(model, tmp_path / "h.hgz", lineage=lineage)
    entries = container.read_file(tmp_path / "h.hgz")[0]["tensors"]
    kinds = [e[0] for e in entries]
    assert kinds.count("x") == 1 and ["x", seed, count] == entries[kinds.index("x")][:3]
    loaded, _ = load_model(tmp_path / "h.hgz")
    _same(model, loaded)


def test_hash_is_the_same_integers_as_a_reference_loop() -> None:
    def mix(i: int, seed: int) -> int:
        x = (i * 0x9E3779B1 + seed) & 0xFFFFFFFF
        for shift, mul in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
            x ^= x >> shift
            x = (x * mul) & 0xFFFFFFFF
        return x ^ (x >> 16)

    index = np.array([0, 1, 2, 12345, 2**31 + 5])
    assert [int(v) for v in hashing.mix32(index, 99)] == [mix(int(i), 99) for i in index]


def test_huffman_round_trips_skewed_and_degenerate_streams() -> None:
    rng = np.random.default_rng(3)
    for alphabet, probs in ((2, [0.99, 0.01]), (1, [1.0]), (40, None), (256, None)):
        symbols = rng.choice(alphabet, size=3001, p=probs)
        data = huffman.encode(symbols, alphabet)
        assert np.array_equal(huffman.decode(data, len(symbols), alphabet), symbols)
    fib = [1, 1]
    while len(fib) < 40:  # Fibonacci counts: plain Huffman would give a 39-bit code
        fib.append(fib[-1] + fib[-2])
    lengths = huffman.code_lengths(np.array(fib))
    assert lengths.max() <= huffman.MAX_LENGTH and np.sum(2.0 ** -lengths) <= 1.0


def test_compare_coders_rows_are_exact_and_entropy_coding_pays_on_skewed_indices(model) -> None:
    rng = np.random.default_rng(2)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                levels = torch.linspace(-0.1, 0.1, 8)
                pick = rng.choice(8, size=m.weight.numel(), p=[0.02, 0.03, 0.1, 0.35, 0.35, 0.1, 0.03, 0.02])
                m.weight.copy_(levels[torch.from_numpy(pick)].view_as(m.weight))
    rows = {r["coder"]: r for r in compare_coders(model)}
    assert list(rows) == [*coders.NAMES, "best"] and all(r["exact"] for r in rows.values())
    for name in ("huffman", "ans"):
        assert rows[name]["stream_bytes"] < rows["raw"]["stream_bytes"]


def _packed(model, tmp_path: Path) -> bytes:
    path = tmp_path / "m.hgz"
    pack_model(model, path)
    return path.read_bytes()


@pytest.mark.parametrize("damage", ["truncated", "flipped", "empty", "header"])
def test_damaged_files_are_one_line(model, tmp_path: Path, damage: str) -> None:
    data = _packed(model, tmp_path)
    bad = {"truncated": data[:len(data) // 2], "flipped": data[:-10] + bytes([data[-10] ^ 1]) + data[-9:],
           "empty": b"", "header": data[:40] + bytes([data[40] ^ 0xFF]) + data[41:]}[damage]
    path = tmp_path / "bad.hgz"
    path.write_bytes(bad)
    with pytest.raises(HGCError) as err:
        load_model(path)
    message = str(err.value)
    assert "\n" not in message and ("damaged" in message or "not an hgc packed model" in message)


def test_a_newer_version_is_refused_by_name(model, tmp_path: Path) -> None:
    data = _packed(model, tmp_path)
    body = bytearray(data[len(container.MAGIC) + 32:])
    struct.pack_into("<H", body, 0, container.VERSION + 1)
    path = tmp_path / "new.hgz"
    path.write_bytes(container.MAGIC + hashlib.sha256(bytes(body)).digest() + bytes(body))
    with pytest.raises(HGCError, match=f"version {container.VERSION + 1}; this hgc reads up to version"):
        load_model(path)


def test_pack_refuses_non_float_models_and_wrong_names(model, tmp_path: Path) -> None:
    with pytest.raises(HGCError, match="must end in .hgz"):
        pack_model(model, tmp_path / "m.pt")
    model.stacks[0].score.weight.data = model.stacks[0].score.weight.data.to(torch.float16)
    with pytest.raises(HGCError, match="pack stores float32"):
        pack_model(model, tmp_path / "m.hgz")
    assert not (tmp_path / "m.hgz").exists()


def test_a_checkpoint_loads_through_the_same_loader(model, tmp_path: Path) -> None:
    checkpoint.save(model, tmp_path / "m.pt")
    loaded, info = load_model(tmp_path / "m.pt")
    _same(model, loaded)
    assert info.path.endswith("m.pt")


@pytest.mark.parametrize("coder", ["ans", "raw"])
def test_stage_factors_multiply_to_the_ratio_and_count_what_the_file_holds(model, tmp_path: Path, coder: str) -> None:
    _clustered(model, 8, zero_fraction=0.6)
    path = tmp_path / "m.hgz"
    report = pack_model(model, path, coder=coder)
    sizes, factors = report.to_dict()["sizes"], report.to_dict()["stages"]
    state = load_model(path)[0].state_dict()
    assert sizes["file_bytes"] == report.bytes == path.stat().st_size
    assert sizes["weights"] == report.weights == stages.float_values(state)
    assert sizes["conv_zeros"] == sum(int((t == 0).sum()) for t in state.values() if t.dim() == 4) > 0
    assert sizes["header_bytes"] + sizes["float_block_bytes"] + sizes["stream_bytes"] == report.bytes
    assert sizes["float_block_bytes"] == container.read_file(path)[0]["block"]
    product = math.prod(factors[k] for k in stages.PACK_STAGES)
    assert product == pytest.approx(report.fp32_bytes / report.bytes, rel=1e-12)
    assert factors["x_vs_fp32_tensors"] == pytest.approx(product, rel=1e-12)
    if coder == "raw":  # the bit-packed sizes are what coder raw really stores
        assert sizes["raw_stream_bytes"] == sizes["stream_bytes"] and factors["entropy_x"] == 1.0
    else:
        assert factors["entropy_streams_x"] > 1.0 and factors["clustering_x"] > 1.0
    chain = stages.stage_chain(sizes, baseline_bytes=3_000_000, baseline_values=2.5 * report.weights)
    assert math.prod(chain[k] for k in stages.STAGES) == pytest.approx(3_000_000 / report.bytes, rel=1e-12)
    assert chain["total_x"] == pytest.approx(3_000_000 / report.bytes) and chain["pruning_x"] == pytest.approx(2.5)


def test_hashed_layers_count_their_buckets_as_stored_values(model, tmp_path: Path) -> None:
    conv, seed, count = _hash_one_layer(model)
    report = pack_model(model, tmp_path / "h.hgz", lineage=[{"op": "hash", "params": {"ratio": 8.0, "seed": 7}}])
    row = next(r for r in report.layers if r["kind"] == "x")
    assert row["weights"] == conv.weight.numel() and row["float_values"] == count and row["raw_stream_bytes"] == 0
    factors = report.to_dict()["stages"]
    assert math.prod(factors[k] for k in stages.PACK_STAGES) == pytest.approx(report.fp32_bytes / report.bytes,
                                                                             rel=1e-12)


def test_pack_op_records_the_coder_comparison_only_when_asked(model, tmp_path: Path) -> None:
    ctx = StepContext(step_dir=tmp_path, data="synthetic", device="cpu", budget=Budget(), resume=False, progress=False,
                      lineage=[], meta={})
    plain = pack(model, PackParams(), ctx).metrics
    assert "coders" not in plain and plain["stages"]["clustering_x"] > 0
    compared = pack(model, PackParams(compare_coders=True), ctx).metrics
    assert [r["coder"] for r in compared["coders"]] == list(CODER_CHOICES) and all(r["exact"] for r in compared["coders"])
