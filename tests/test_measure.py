"""Measurement: MAC counting rules, sizes, latency structure, pair ratios, peak, bench/inspect tables.

No assertion depends on how fast this machine is: latency tests check structure and positivity only.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper

from compress.cli import main
from compress.errors import HGCError
from compress.measure import count_macs, count_params, file_sizes, onnx_macs, onnx_params
from compress.measure.bench import bench_models, bench_side_by_side, format_table, inspect_models, write_frame
from compress.measure.cost import onnx_precision
from compress.measure.latency import SETTLE_CALLS, Timing, ratio_summary, time_pairs, time_predictor
from compress.measure.machine import machine_info
from compress.measure.peak import matmul_model, ort_peak, torch_peak
from compress.nets import checkpoint
from compress.nets.config import HourglassConfig
from compress.nets.hourglass import StackedHourglass
from compress.runtime import open_session
from compress.runtime_openvino import available as openvino_available


def _known_macs_model(batch: int | str = 1) -> tuple[object, int]:
    """Conv 3→8 3×3 on 16×16, ConvTranspose 8→4 k2 s2 (8×8 in), MatMul 32×5, Gemm: MACs known by hand."""
    rng = np.random.default_rng(0)
    weights = (("cw", (8, 3, 3, 3)), ("tw", (8, 4, 2, 2)), ("mw", (32, 5)), ("gw", (5, 7)))
    init = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name) for name, shape in weights]
    integers = (("shape", [-1, 32]), ("s0", [0]), ("s1", [8]), ("ax", [3]))
    init += [numpy_helper.from_array(np.array(v, dtype=np.int64), name) for name, v in integers]
    nodes = [
        helper.make_node("Conv", ["x", "cw"], ["c"], pads=[1, 1, 1, 1]),          # 16·16·8·27 per image
        helper.make_node("MaxPool", ["c"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("ConvTranspose", ["p", "tw"], ["t"], strides=[2, 2]),   # 8·8 in × 8·4·2·2
        helper.make_node("Slice", ["t", "s0", "s1", "ax"], ["ts"]),                 # → N×4×16×8
        helper.make_node("Reshape", ["ts", "shape"], ["r"]),                          # → (N·16)×32
        helper.make_node("MatMul", ["r", "mw"], ["m"]),                               # (N·16)·5·32
        helper.make_node("Gemm", ["m", "gw"], ["y"]),                                 # (N·16)·7·5
    ]
    image = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 16, 16])
    result = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "known", [image], [result], init)
    macs = 16 * 16 * 8 * 27 + 8 * 8 * 8 * 4 * 4 + 16 * 5 * 32 + 16 * 7 * 5
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), macs


@pytest.mark.parametrize("batch", [1, "N"])
def test_onnx_macs_follow_the_documented_rules(batch: int | str) -> None:
    proto, macs = _known_macs_model(batch)
    assert onnx_macs(proto) == macs
    assert onnx_params(proto) == 8 * 27 + 8 * 16 + 32 * 5 + 5 * 7
    assert onnx_precision(proto) == "fp32"


def test_torch_macs_count_conv_deconv_and_linear(tiny_config: HourglassConfig) -> None:
    from torch import nn

    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ConvTranspose2d(8, 4, 2, stride=2), nn.Flatten(),
                        nn.Linear(4 * 32 * 32, 5))
    assert count_macs(net, 16) == 16 * 16 * 8 * 27 + 16 * 16 * 8 * 4 * 4 + 4 * 32 * 32 * 5
    assert count_params(net) == sum(p.numel() for p in net.parameters())


def test_sizes_of_a_model_file(tmp_path: Path, tiny_config: HourglassConfig) -> None:
    checkpoint.save(StackedHourglass(tiny_config), tmp_path / "m.pt")
    sizes = file_sizes(tmp_path / "m.pt")
    assert sizes["bytes"] == (tmp_path / "m.pt").stat().st_size
    assert 0 < sizes["gzip_bytes"] < sizes["bytes"] and 0 < sizes["lzma_bytes"] < sizes["bytes"]
    assert sizes["gzip_ratio"] == sizes["gzip_bytes"] / sizes["bytes"]
    with pytest.raises(HGCError, match="no such file"):
        file_sizes(tmp_path / "absent.pt")


def test_latency_summary_structure() -> None:
    timing = time_predictor(lambda x: x.sum(), np.ones((2, 3, 8, 8), np.float32), runs=7, warmup=1)
    stats = timing.summary()
    assert len(timing.ms) == 7 and all(t > 0 for t in timing.ms)
    assert set(stats) == {"p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "std_ms"}
    assert 0 < stats["min_ms"] <= stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"]


def test_pairs_alternate_and_ratios_are_per_round() -> None:
    order: list[str] = []
    timings = time_pairs([lambda x: order.append("A"), lambda x: order.append("B")], [np.zeros(1), np.zeros(1)],
                         runs=4, warmup=1, settle=0)
    assert order == ["A", "B"] * 5 and [len(t.ms) for t in timings] == [4, 4]
    order.clear()  # by default each timed call follows SETTLE_CALLS untimed ones of the same model (timed warm)
    time_pairs([lambda x: order.append("A"), lambda x: order.append("B")], [np.zeros(1), np.zeros(1)], runs=2,
               warmup=0)
    assert order == (["A"] * (SETTLE_CALLS + 1) + ["B"] * (SETTLE_CALLS + 1)) * 2
    ratios = ratio_summary(Timing([2.0, 4.0, 6.0, 8.0]), Timing([1.0, 1.0, 2.0, 2.0]))
    assert ratios["ratio_median"] == 3.5 and ratios["ratio_q25"] <= 3.5 <= ratios["ratio_q75"]  # 2, 4, 3, 4
    assert math.isclose(ratios["ratio_iqr"], ratios["ratio_q75"] - ratios["ratio_q25"])
    with pytest.raises(ValueError):
        time_pairs([lambda x: x], [np.zeros(1)])


def test_peak_is_positive() -> None:
    peak = ort_peak(1, ["CPUExecutionProvider"], size=128, runs=2, warmup=1)
    assert peak["fp32"] > 0 and peak["int8"] > 0
    assert torch_peak(1, size=128, runs=2, warmup=1)["fp32"] > 0
    signed = open_session(matmul_model(64, int8=True, signed=True), ["CPUExecutionProvider"], 1, "s8 probe")
    assert signed.run(None, {"A": np.ones((64, 64), np.int8)})[0].shape == (64, 64)  # the GPU providers' form


def test_machine_info_records_what_ran() -> None:
    info = machine_info()
    assert {"cpu", "isa", "cores", "gpu", "torch", "onnxruntime"} <= set(info) and info["cores"] >= 1


@pytest.fixture
def models(tmp_path: Path, tiny_config: HourglassConfig) -> tuple[Path, Path]:
    """A tiny checkpoint and an ONNX file with known MACs, side by side in ``tmp_path``."""
    checkpoint.save(StackedHourglass(tiny_config), tmp_path / "a.pt")
    proto, _ = _known_macs_model()
    conv_only = helper.make_model(helper.make_graph(
        [proto.graph.node[0], helper.make_node("MaxPool", ["c"], ["y"], kernel_shape=[4, 4], strides=[4, 4])],
        "b", list(proto.graph.input)[:1], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 4, 4])],
        [proto.graph.initializer[0]]), opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    (tmp_path / "b.onnx").write_bytes(conv_only.SerializeToString())
    return tmp_path / "a.pt", tmp_path / "b.onnx"


def test_bench_pair_and_peak_table(models: tuple[Path, Path]) -> None:
    a, b = models
    result = bench_models([str(a), str(b)], batches=(1, 2), runs=3, warmup=1, threads=1, pair=True, peak=True,
                          peak_size=128)
    table = result.table
    assert len(table) == 4 and list(table["batch"]) == [1, 1, 2, 2]
    assert list(table["runtime"]) == ["torch", "onnxruntime"] * 2 and set(table["threads"]) == {1}
    assert (table[["p50_ms", "p90_ms", "p99_ms", "gmac_s", "efficiency", "ratio_median"]] > 0).all().all()
    assert (table.loc[table["model"] == "a.pt", "ratio_median"] == 1.0).all()
    assert set(result.peaks["runtime"]) == {"torch", "onnxruntime"}
    assert table["cpu"].notna().all() and table["onnxruntime"].notna().all()
    assert "ratio_median" in format_table(table)


def test_side_by_side_times_each_file_on_its_runtime_against_the_first(models: tuple[Path, Path]) -> None:
    a, b = models
    jobs = [(str(b), "onnxruntime", None), (str(a), "torch", None)]
    if openvino_available():
        jobs.append((str(b), "openvino", "fp32"))
    table = bench_side_by_side(jobs, batch=2, runs=3, warmup=0, threads=1)
    assert list(table["runtime"]) == [rt for _, rt, _ in jobs] and set(table["batch"]) == {2}
    assert table["ratio_median"].iloc[0] == 1.0 and (table[["p50_ms", "ratio_median"]] > 0).all().all()
    if openvino_available():
        assert table["precision_hint"].iloc[-1] == "fp32"
    with pytest.raises(HGCError, match="at least one other"):
        bench_side_by_side(jobs[:1])


def test_inspect_table(models: tuple[Path, Path], tiny_config: HourglassConfig) -> None:
    a, b = models
    table, details = inspect_models([str(a), str(b)])
    assert list(table["kind"]) == ["checkpoint", "onnx"]
    assert table["params"][0] == count_params(StackedHourglass(tiny_config))
    assert table["gmacs"][1] * 1e9 == pytest.approx(16 * 16 * 8 * 27)
    assert table["lzma_bytes"][0] < table["gzip_bytes"][0] < table["bytes"][0]
    assert "stacks=1" in details[0]["config"]


def test_write_frame_is_valid_json_and_csv(tmp_path: Path) -> None:
    frame = pd.DataFrame([{"a": 1.0, "b": float("nan")}])
    write_frame(frame, str(tmp_path / "t.csv"), str(tmp_path / "t.json"), extra={"peaks": frame})
    payload = json.loads((tmp_path / "t.json").read_text())
    assert payload["rows"] == [{"a": 1.0, "b": None}] and payload["peaks"] == payload["rows"]
    assert pd.read_csv(tmp_path / "t.csv").shape == (1, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.json"]


def test_cli_bench_and_inspect_write_only_their_outputs(models: tuple[Path, Path], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "a.pt", "b.onnx", "--pair", "--batch", "1", "--runs", "2", "--warmup", "0", "--settle", "0",
                 "--threads", "1", "--csv", "out.csv", "--json", "out.json"]) == 0
    out = capsys.readouterr().out
    assert "machine:" in out and "ratio_median" in out and "b.onnx" in out
    assert main(["inspect", "a.pt", "b.onnx"]) == 0
    assert "lzma_bytes" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.onnx", "out.csv", "out.json"]


@pytest.mark.parametrize("argv, message", [
    (["bench", "a.pt", "--pair"], "--pair needs at least two models"),
    (["bench"], "at least one model"),
    (["bench", "a.pt", "b.onnx", "--pair", "--settle", "-1"], "warmup and settle ≥ 0"),
    (["bench", "a.pt", "--csv", "missing/out.csv", "--batch", "1", "--runs", "1", "--warmup", "0"], "does not exist"),
    (["inspect", "nothing.onnx"], "no such model file"),
])
def test_cli_bench_bad_input_is_one_line_exit_2(models: tuple[Path, Path], tmp_path: Path, argv: list, message: str,
                                                monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_an_int8_artifact_has_the_params_of_its_fp32_export(tmp_path: Path, tiny_config: HourglassConfig) -> None:
    import torch

    from compress.export import export_onnx
    from compress.measure.cost import load_onnx
    from compress.techniques.quantize import quantize_onnx_int8

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        checkpoint.save(StackedHourglass(tiny_config), tmp_path / "m.pt")
        fp32 = export_onnx(str(tmp_path / "m.pt"), tmp_path / "m.onnx", dynamic_batch=True).path
        int8 = str(tmp_path / "m.int8.onnx")
        quantize_onnx_int8(fp32, int8, "synthetic:train", calibration_images=4, sensitivity_images=4, scoring_images=4)
    finally:
        torch.set_num_threads(threads)
    proto = load_onnx(int8)
    assert any(t.data_type == TensorProto.INT32 for t in proto.graph.initializer)  # int32 biases are there
    assert onnx_params(proto) == onnx_params(load_onnx(fp32))  # compare to the fp32 ONNX, not the checkpoint
