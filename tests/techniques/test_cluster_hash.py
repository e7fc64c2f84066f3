"""The cluster and hash ops on tiny models: tied values through fine-tuning, zeros kept, bad input refused."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from compress.errors import HGCError
from compress.nets.hourglass import StackedHourglass
from compress.nets.shared import is_shared, unshare_weight
from compress.packed import format as container, hashing, load_model, pack_model
from compress.steps import StepContext
from compress.techniques.cluster import ClusterParams, cluster
from compress.techniques.cluster import kmeans
from compress.techniques.cluster.tied import cluster_weight, tie
from compress.techniques.hash import HashParams, hash_weights

TUNE = {"steps": 2, "batch_size": 2, "checkpoint_every": 0}


@pytest.fixture
def model(tiny_config) -> StackedHourglass:
    return StackedHourglass(tiny_config).eval()


def _ctx(tmp_path: Path, teacher: nn.Module, lineage: list | None = None) -> StepContext:
    return StepContext(step_dir=tmp_path, data="synthetic", progress=False, lineage=lineage or [],
                       teacher_loader=lambda: teacher)


def _convs(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


@pytest.mark.parametrize("init", kmeans.INITS)
def test_kmeans_gives_at_most_k_centroids_and_nearest_labels(init: str) -> None:
    values = np.random.default_rng(0).normal(size=2000)
    centroids, labels = kmeans.cluster(values, 16, init)
    assert len(centroids) <= 16 and centroids.dtype == np.float32 and np.all(np.diff(centroids) > 0)
    distance = np.abs(values[:, None] - centroids[None, :].astype(np.float64))
    assert np.array_equal(labels, distance.argmin(1))


def test_optimal_is_no_worse_than_lloyd() -> None:
    values = np.random.default_rng(1).standard_t(3, size=3000)

    def sse(init: str) -> float:
        c, lab = kmeans.cluster(values, 8, init)
        return float(((values - c[lab]) ** 2).sum())

    assert sse("optimal") <= min(sse("linear"), sse("density"), sse("kmeans++")) * (1 + 1e-6)


def test_cluster_keeps_at_most_k_values_per_layer_through_fine_tuning(model, tmp_path: Path) -> None:
    teacher = copy.deepcopy(model)
    params = ClusterParams.build({"k": 4, "layer_k": {"stem.conv.0": 8}, "tune": TUNE}, "cluster")
    result = cluster(model, params, _ctx(tmp_path, teacher))
    assert result.model is model and result.metrics["tune_steps"] == 2
    for name, conv in _convs(model).items():
        assert not is_shared(conv) and type(conv) is nn.Conv2d
        distinct = len(torch.unique(conv.weight.detach()))
        if name == "stacks.0.score":
            assert distinct > 8  # excluded by default: trained, not clustered
        else:
            assert distinct <= (8 if name == "stem.conv.0" else 4), name
    assert list(model.state_dict()) == list(StackedHourglass(model.config).state_dict())
    assert not torch.equal(model.stem.conv[0].weight, teacher.stem.conv[0].weight)


def test_fine_tuning_moves_the_centroids_not_the_ties(model, tmp_path: Path) -> None:
    teacher = copy.deepcopy(model)
    one_shot = copy.deepcopy(model)
    cluster(one_shot, ClusterParams.build({"k": 4, "tune": None}, "c"), _ctx(tmp_path, teacher))
    cluster(model, ClusterParams.build({"k": 4, "tune": {**TUNE, "lr": 1e-2}}, "c"), _ctx(tmp_path, teacher))
    conv, before = model.stacks[0].res[0].conv2.weight.detach(), one_shot.stacks[0].res[0].conv2.weight.detach()
    _, groups_before = torch.unique(before, return_inverse=True)
    _, groups_after = torch.unique(conv, return_inverse=True)
    assert torch.equal(groups_before, groups_after)  # same members, new centroid values
    assert not torch.equal(before, conv)


def test_sparse_zeros_stay_zero_through_clustering_and_packing(model, tmp_path: Path) -> None:
    torch.manual_seed(1)
    with torch.no_grad():
        for conv in _convs(model).values():
            conv.weight[torch.rand(conv.weight.shape) < 0.7] = 0.0
    zeros = {n: c.weight.detach() == 0 for n, c in _convs(model).items()}
    params = ClusterParams.build({"k": 4, "per_channel": True, "init": "optimal", "tune": TUNE}, "cluster")
    cluster(model, params, _ctx(tmp_path, copy.deepcopy(model)))
    for name, conv in _convs(model).items():
        weight = conv.weight.detach()
        assert torch.equal(weight[zeros[name]], torch.zeros_like(weight[zeros[name]])), name
        if name != "stacks.0.score":
            rows = weight.reshape(weight.shape[0], -1)
            assert max(len(torch.unique(r)) for r in rows) <= 4  # the zero is one of the k
    pack_model(model, tmp_path / "m.hgz")
    loaded, _ = load_model(tmp_path / "m.hgz")
    for name, conv in _convs(loaded).items():
        assert torch.equal(conv.weight.detach(), _convs(model)[name].weight.detach())


@pytest.mark.parametrize("raw, words", [({"k": 1}, "k: 1 is outside [2, 256]"),
                                        ({"k": 300}, "k: 300 is outside"),
                                        ({"layer_k": {"stem.*": 1}}, "layer_k['stem.*']: 1 is not an integer"),
                                        ({"init": "random"}, "init: 'random' is not one of")])
def test_bad_cluster_params_are_one_line(raw: dict, words: str) -> None:
    with pytest.raises(HGCError, match=words.replace("[", r"\[").replace("]", r"\]").replace("*", r"\*")):
        ClusterParams.build(raw, "steps[0].cluster")


def test_k_above_a_layers_weight_count_is_refused_before_any_work(model, tmp_path: Path) -> None:
    before = copy.deepcopy(model.state_dict())
    params = ClusterParams.build({"k": 256, "per_channel": True}, "cluster")
    with pytest.raises(HGCError, match=r"layer 'stem.conv.0' has \d+ weights per output channel, fewer than k=256"):
        cluster(model, params, _ctx(tmp_path, model))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(HGCError, match="matches no clustered conv layer"):
        cluster(model, ClusterParams.build({"layer_k": {"nowhere.*": 4}}, "c"), _ctx(tmp_path, model))


def test_an_int8_model_is_refused(model, tmp_path: Path) -> None:
    lineage = [{"op": "quantize", "params": {"precision": "int8"}}]
    with pytest.raises(HGCError, match="already quantized|quantized to int8"):
        cluster(model, ClusterParams(), _ctx(tmp_path, model, lineage))


def test_hashed_layers_rebuild_from_buckets_and_seed_and_pack_as_such(model, tmp_path: Path) -> None:
    params = HashParams.build({"ratio": 4, "seed": 3, "tune": TUNE}, "hash")
    lineage = [{"op": "hash", "params": params.to_dict()}]
    result = hash_weights(model, params, _ctx(tmp_path, copy.deepcopy(model), lineage))
    assert result.metrics["layers"] == len(_convs(model)) - 1
    for name, conv in _convs(model).items():
        if name == "stacks.0.score":
            continue
        assert type(conv) is nn.Conv2d
        weight = conv.weight.detach().numpy()
        seed, count = hashing.layer_seed(3, name), hashing.bucket_count(weight.size, 4)
        buckets = hashing.recover(weight, seed, count)
        assert buckets is not None and len(buckets) == count
        assert np.array_equal(hashing.materialise(buckets, seed, weight.shape), weight)
    pack_model(model, tmp_path / "h.hgz", lineage=lineage)
    kinds = [e[0] for e in container.read_file(tmp_path / "h.hgz")[0]["tensors"]]
    assert kinds.count("x") == len(_convs(model)) - 1


def test_hashing_an_unsupported_layer_type_is_refused(model, tmp_path: Path) -> None:
    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(4, 4))

    model.odd = Odd()
    with pytest.raises(HGCError, match="layer 'odd' is a Odd; hashing supports Conv2d and ConvTranspose2d"):
        hash_weights(model, HashParams(), _ctx(tmp_path, model))


def test_a_tied_layer_saves_plain_keys_and_reloads_its_codebook_from_them(model) -> None:
    conv = model.stacks[0].res[0].conv2
    book, index, zero = cluster_weight(conv.weight.detach().numpy(), 4, "linear", 10, False, 0)
    tie(conv, book, index, zero)
    state = conv.state_dict()
    assert list(state) == ["weight", "bias"] and len(torch.unique(state["weight"])) <= 4
    with torch.no_grad():
        conv.cluster_codebook.add_(1.0)
    conv.load_state_dict(state)  # what resuming a tied fine-tuning does
    assert torch.equal(conv.weight, state["weight"])
    untied = state["weight"].clone()
    untied.view(-1)[0] += 0.5
    with pytest.raises(RuntimeError, match="not tied"):
        conv.load_state_dict({"weight": untied, "bias": state["bias"]})
    unshare_weight(conv)
    assert type(conv) is nn.Conv2d and list(conv.state_dict()) == ["weight", "bias"]
