"""OpenVINO runtime: evaluation and timing (fp32, int8 QDQ; bf16 where the CPU has it), parity with onnxruntime,
IR export round trip, the precision decision (faked capability lists) and bad input.

Tests that run OpenVINO skip with a reason only when the ``openvino`` package is absent (``needs_openvino``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from compress import runtime_openvino as ovr
from compress.cli import main
from compress.data.crops import crops
from compress.errors import HGCError
from compress.evaluate import evaluate
from compress.export import export_onnx
from compress.export_ir import export_openvino
from compress.measure.bench import bench_models, model_cost
from compress.measure.cost import count_params
from compress.measure.sizes import file_sizes
from compress.nets import checkpoint
from compress.nets.config import HourglassConfig
from compress.nets.hourglass import StackedHourglass
from compress.onnx_meta import read_metadata
from compress.recipe import default_runtimes, load_recipe
from compress.runner import run_recipe
from compress.runtime import load_predictor
from compress.techniques.quantize import QuantizeParams, quantize_onnx_int8
from compress.techniques.quantize import bf16 as qbf16
from compress.techniques.quantize.nncf_ov import quantize_openvino_int8

NO_BF16 = ["FP32", "INT8", "BIN", "EXPORT_IMPORT"]  # what this project's AVX2 EPYC reports
WITH_BF16 = ["FP32", "BF16", "INT8", "BIN", "EXPORT_IMPORT"]  # an AVX512-BF16 / AMX Xeon


@pytest.fixture
def needs_openvino() -> None:
    pytest.importorskip("openvino", reason='the openvino extra is not installed (pip install -e ".[openvino]")')


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A tiny random hourglass: checkpoint, fp32 ONNX (dynamic batch) and its int8 QDQ file."""
    pytest.importorskip("openvino", reason='the openvino extra is not installed (pip install -e ".[openvino]")')
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("ov")
    ckpt = root / "tiny.pt"
    checkpoint.save(StackedHourglass(HourglassConfig(stacks=1, features=16, depth=2, input_size=32)), ckpt)
    fp32 = export_onnx(str(ckpt), root / "tiny.onnx", dynamic_batch=True).path
    int8 = str(root / "tiny.int8.onnx")
    quantize_onnx_int8(fp32, int8, "synthetic:train", calibration_images=8)
    return {"ckpt": str(ckpt), "fp32": fp32, "int8": int8, "root": str(root)}


def _rel_mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a - b) ** 2) / np.var(b))


def test_precision_decision_with_faked_capabilities() -> None:
    assert ovr.choose_hint(None, None, NO_BF16, "fp32") == "fp32"
    assert ovr.choose_hint(None, None, WITH_BF16, "bf16") == "bf16"  # the plugin's own default on AMX: recorded
    assert ovr.choose_hint("fp32", None, WITH_BF16, "bf16") == "fp32"  # forced fp32
    assert ovr.choose_hint(None, "bf16", WITH_BF16, "fp32") == "bf16"  # a bf16 artifact asks for it
    assert ovr.choose_hint(None, "int8", WITH_BF16, "bf16") == "bf16"  # int8 files: float parts in the default
    assert ovr.choose_hint(None, "fp16", NO_BF16, "fp32") == "fp32"  # an fp16 file where the CPU has no FP16
    assert ovr.executed_label("fp16", "fp32") == "fp16 (run as fp32)"
    with pytest.raises(HGCError, match=r"--precision fp16, but this CPU cannot run fp16"):
        ovr.choose_hint("fp16", None, NO_BF16, "fp32")
    with pytest.raises(HGCError, match=r"artifact records precision bf16, but this CPU cannot run bf16: .*"
                                       r"FP32, INT8, BIN, EXPORT_IMPORT, no BF16 \(needs AVX512_BF16 or AMX-BF16\)"):
        ovr.choose_hint(None, "bf16", NO_BF16, "fp32")
    with pytest.raises(HGCError, match=r"--precision bf16, but this CPU cannot run bf16"):
        ovr.choose_hint("bf16", None, NO_BF16, "fp32")
    with pytest.raises(HGCError, match="--precision int8: OpenVINO's CPU plugin runs fp32, bf16, fp16"):
        ovr.choose_hint("int8", None, WITH_BF16, "fp32")
    assert ovr.executed_label(None, "bf16") == "fp32 (run as bf16)"
    assert ovr.executed_label("fp32", "fp32") == "fp32" and ovr.executed_label("bf16", "bf16") == "bf16"
    assert ovr.executed_label("int8", "bf16") == "int8 (float parts as bf16)"
    assert ovr.executed_label("fp16", "fp32") == "fp16 (run as fp32)"


def test_fp32_and_int8_evaluate_and_time_in_openvino_beside_onnxruntime(files, needs_openvino) -> None:
    images = crops("synthetic:val", 32, 16).images
    predictors = {}
    for name, tolerance in (("fp32", 1e-10), ("int8", 1e-2)):  # relative heatmap MSE against onnxruntime
        ov, ort = load_predictor(files[name], runtime="openvino", threads=1), load_predictor(files[name], threads=1)
        assert ov.runtime == "openvino" and ov.threads == 1 and ov.streams == 1
        out = ov(images)
        assert out.shape == ort(images).shape == (16, 16, 8, 8)
        assert _rel_mse(out, ort(images)) < (tolerance if ov.precision_hint == "fp32" else 1e-2)
        report = evaluate(ov, "synthetic:val", limit=8, batch_size=3)  # batches 3, 3, 2: two compiled shapes
        assert len(report.indices) == 8 and 0 <= report.result.to_dict()["Mean"] <= 100
        predictors[name] = ov
    fp32_convs = {"fp32": {"f32"}, "bf16": {"bf16", "f32"}}[predictors["fp32"].precision_hint]
    assert predictors["fp32"].conv_precisions and set(predictors["fp32"].conv_precisions) <= fp32_convs
    assert set(predictors["int8"].conv_precisions) <= {"u8", "i8"}  # the QDQ convs run int8 kernels
    result = bench_models([files["fp32"], files["int8"]], batches=(1,), runs=3, warmup=1, threads=1, pair=True,
                          runtimes=["onnxruntime", "openvino"], peak=True, peak_size=64)
    peaks = result.peaks.set_index("runtime")
    assert peaks.loc["openvino", "fp32_gmac_s"] > 0 and peaks.loc["openvino", "int8_gmac_s"] > 0
    table = result.table
    assert list(table.runtime) == ["onnxruntime", "openvino", "onnxruntime", "openvino"]
    assert table.model.iloc[1] == "tiny.onnx [openvino]" and table.reference.iloc[3] == "tiny.onnx [onnxruntime]"
    ov_rows = table[table.runtime == "openvino"]
    assert list(ov_rows.streams) == [1, 1] and set(ov_rows.precision_hint) <= {"fp32", "bf16"}
    assert ov_rows.executed.iloc[1].startswith("int8") and (table.p50_ms > 0).all()
    assert result.machine["openvino_capabilities"] == " ".join(ovr.cpu_capabilities())


def test_bf16_runs_where_the_cpu_has_it_and_is_refused_in_one_line_where_not(files, needs_openvino,
                                                                             tmp_path: Path) -> None:
    marked = str(tmp_path / "tiny.bf16.onnx")
    report = qbf16.convert_bf16(files["fp32"], marked)
    assert json.loads(json.dumps(report.to_dict()))["precision"] == "bf16"
    assert model_cost(marked)["precision"] == "bf16" and read_metadata(marked)["quantization"]["precision"] == "bf16"
    with pytest.raises(HGCError, match="a bf16 artifact; onnxruntime's CPU provider has no bfloat16 kernels"):
        load_predictor(marked)
    if "BF16" in ovr.cpu_capabilities():  # an AVX512-BF16 / AMX CPU: evaluated and timed as bf16
        predictor = load_predictor(marked, runtime="openvino", threads=1)
        assert predictor.executed == "bf16" and predictor.precision_hint == "bf16"
        forced = load_predictor(files["fp32"], runtime="openvino", threads=1, precision="bf16")
        assert forced.executed == "fp32 (run as bf16)"
        assert evaluate(predictor, "synthetic:val", limit=4).result.to_dict()["Mean"] >= 0
        qbf16.check_openvino("bf16")
    else:  # this project's AVX2 EPYC: the missing capability is named, nothing runs as a silent fp32
        for call in (lambda: load_predictor(marked, runtime="openvino"),
                     lambda: load_predictor(files["fp32"], runtime="openvino", precision="bf16"),
                     lambda: qbf16.check_openvino("bf16")):
            with pytest.raises(HGCError, match=r"no BF16 \(needs AVX512_BF16 or AMX-BF16\)"):
                call()


def test_bf16_step_decision_follows_the_capability_list(monkeypatch: pytest.MonkeyPatch, needs_openvino) -> None:
    with pytest.raises(HGCError, match="precision: bf16 has no onnxruntime CPU kernels; set runtime: openvino"):
        QuantizeParams(precision="bf16")
    QuantizeParams(precision="bf16", runtime="openvino").check()
    monkeypatch.setattr(qbf16, "cpu_capabilities", lambda _core=None: WITH_BF16)
    qbf16.check_openvino("bf16")  # a BF16 CPU: the step goes ahead
    monkeypatch.setattr(qbf16, "cpu_capabilities", lambda _core=None: NO_BF16)
    with pytest.raises(HGCError, match=r"precision bf16 for openvino: .*no BF16"):
        qbf16.check_openvino("bf16")


def test_ir_export_round_trip_with_metadata(files, needs_openvino, tmp_path: Path) -> None:
    out = tmp_path / "tiny.xml"
    result = export_openvino(files["ckpt"], out, parity_images=4)
    assert sorted(os.listdir(tmp_path)) == ["tiny.bin", "tiny.xml"]  # nothing left of the temporary directory
    meta = result.metadata
    assert meta["export"]["dynamic_batch"] and meta["input"]["shape"][0] == "batch"
    assert meta["format"] == "hgc-onnx/1" and meta["config"]["features"] == 16
    assert meta["export"]["weights"] == "fp16-compressed" and meta["lineage"][-1]["params"]["format"] == "openvino"
    assert meta["parity"]["max_abs_diff"] <= meta["parity"]["atol"] == 5e-3
    model, _ = checkpoint.load(files["ckpt"])
    images = crops("synthetic:val", 32, 4).images
    with torch.inference_mode():
        reference = model(torch.from_numpy(images))[:, -1].numpy()
    # an .xml runs in OpenVINO by its file type; fp32 forced, as the export's parity check (the plugin's default
    # on an AVX512-BF16/AMX CPU is bf16, ~1e-2 off at these magnitudes)
    predictor = load_predictor(str(out), threads=1, precision="fp32")
    assert predictor.runtime == "openvino" and np.abs(predictor(images) - reference).max() <= 5e-3
    default = load_predictor(str(out), threads=1)  # whatever the plugin picks: close, within bf16's 8-bit mantissa
    assert default.runtime == "openvino" and np.abs(default(images) - reference).max() <= 5e-2
    cost = model_cost(str(out))
    assert cost["kind"] == "openvino-ir" and cost["params"] == count_params(model)
    assert file_sizes(str(out))["bytes"] == result.bytes == out.stat().st_size + out.with_suffix(".bin").stat().st_size
    fp32 = export_openvino(files["ckpt"], tmp_path / "full.xml", compress_weights=False, parity_images=2,
                           onnx_file=files["fp32"])
    assert fp32.metadata["export"]["weights"] == "fp32" and fp32.max_abs_diff <= 1e-4
    with pytest.raises(HGCError, match=r"export parity failed: max \|OpenVINO - PyTorch\| = .* nothing written"):
        export_openvino(files["ckpt"], tmp_path / "strict.xml", atol=1e-12, parity_images=2, onnx_file=files["fp32"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.bin", "full.xml", "tiny.bin", "tiny.xml"]
    out.with_suffix(".bin").unlink()
    with pytest.raises(HGCError, match=r"tiny.xml: OpenVINO IR without its weights file .*tiny.bin"):
        load_predictor(str(out))


def test_recipe_runtimes_and_a_run_scored_and_timed_in_openvino(files, needs_openvino, tmp_path: Path) -> None:
    assert default_runtimes() == ["onnxruntime-cpu", "torch-cpu", "openvino-cpu"]
    recipe = tmp_path / "ov.yaml"
    recipe.write_text("name: ov\nsteps: []\nevaluate: {limit: 4, batch_size: 4}\n"
                      "measure: {runtimes: [onnxruntime-cpu, openvino-cpu], batch: [1], runs: 2, warmup: 0, "
                      "threads: 1}\n")
    assert load_recipe(recipe).measure.runtimes == ["onnxruntime-cpu", "openvino-cpu"]
    result = run_recipe(load_recipe(recipe), checkpoint=files["ckpt"], out=str(tmp_path / "runs"), progress=False)
    row = result.results
    ov = row["accuracy_by_runtime"]["openvino-cpu"]
    assert ov["samples"] == 4 and ov["streams"] == 1 and ov["threads"] == 1
    assert abs(ov["pckh_mean"] - row["pckh_mean"]) <= 30.0 and ov["executed"] in ("fp32", "fp32 (run as bf16)")
    timed = {lat["runtime"]: lat for lat in row["latency"]}
    assert set(timed) == {"onnxruntime-cpu", "openvino-cpu"}
    assert timed["openvino-cpu"]["precision_hint"] == ov["precision_hint"] and timed["openvino-cpu"]["streams"] == 1
    assert row["machine"]["openvino"] and "deciding" in row["machine"]


def test_nncf_int8_for_openvino_is_an_ir_with_its_report(files, needs_openvino, tmp_path: Path) -> None:
    pytest.importorskip("nncf", reason='NNCF is not installed (pip install -e ".[openvino]")')
    out = str(tmp_path / "tiny.int8.xml")
    params = QuantizeParams(precision="int8", runtime="openvino", calibration_images=8, scoring_images=8)
    report = quantize_openvino_int8(files["fp32"], out, "synthetic:train", params)
    assert sorted(os.listdir(tmp_path)) == ["tiny.int8.bin", "tiny.int8.xml"]
    assert report.int8_convs == report.conv_layers > 0 and report.scored_images == 8 and report.pckh is not None
    meta = ovr.model_metadata(out)
    assert meta["quantization"]["precision"] == "int8" and meta["quantization"]["int8_convs"] == report.int8_convs
    assert meta["config"]["features"] == 16 and meta["lineage"][-1]["op"] == "quantize-openvino"
    predictor = load_predictor(out, threads=1)
    images = crops("synthetic:val", 32, 8).images
    reference = load_predictor(files["fp32"], threads=1)(images)
    assert predictor.executed.startswith("int8") and _rel_mse(predictor(images), reference) < 0.2
    assert model_cost(out)["precision"] == "int8" and file_sizes(out)["bytes"] == report.bytes
    with pytest.raises(HGCError, match="exclude: applies to runtime onnxruntime"):
        QuantizeParams(precision="int8", runtime="openvino", exclude=["stacks.*"])


@pytest.mark.slow
def test_recipe_int8_for_openvino_runs_nncf_and_skips_onnxruntime(files, needs_openvino, tmp_path: Path) -> None:
    pytest.importorskip("nncf", reason='NNCF is not installed (pip install -e ".[openvino]")')
    recipe = tmp_path / "ovq.yaml"
    recipe.write_text("name: ovq\nsteps:\n  - quantize: {precision: int8, runtime: openvino, max_drop: 0.5}\n"
                      "evaluate: {limit: 4, batch_size: 4}\n"
                      "measure: {runtimes: [onnxruntime-cpu, openvino-cpu], batch: [1], runs: 2, warmup: 0}\n")
    row = run_recipe(load_recipe(recipe), checkpoint=files["ckpt"], out=str(tmp_path / "runs"), quick=True,
                     progress=False).results
    assert row["artifact"]["path"] == "00-quantize/model.int8.xml" and row["precision"] == "int8"
    assert "OpenVINO IR" in row["skipped_runtimes"]["onnxruntime-cpu"]
    assert [lat["runtime"] for lat in row["latency"]] == ["openvino-cpu"]
    assert row["accuracy_by_runtime"]["openvino-cpu"]["executed"].startswith("int8")
    log_file = tmp_path / "runs" / "ovq" / row["steps"][0]["dir"] / "log.jsonl"
    log = [json.loads(line) for line in log_file.read_text().splitlines()]
    nncf_event = next(r for r in log if r.get("event") == "nncf")
    assert nncf_event["options"]["accuracy_control"] and nncf_event["calibration"].startswith("nncf")


def test_runtime_not_installed_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(ovr, "available", lambda: False)
    path = tmp_path / "m.onnx"
    path.write_bytes(b"\0")
    with pytest.raises(HGCError, match=r'runtime openvino: the openvino package is not installed; install the extra: '
                                       r'pip install -e "\.\[openvino\]"'):
        load_predictor(str(path), runtime="openvino")
    monkeypatch.setattr("compress.recipe.openvino_available", lambda: False)
    assert "openvino-cpu" not in default_runtimes()


@pytest.mark.parametrize("argv, message", [
    (["eval", "{fp32}", "--runtime", "openvino", "--threads", "0", "--limit", "2"], "--threads 0: must be ≥ 1"),
    (["bench", "{fp32}", "--threads", "0", "--runs", "1"], "--threads 0: must be ≥ 1"),
    (["eval", "{fp32}", "--runtime", "openvino", "--precision", "int8", "--limit", "2"],
     "--precision int8: OpenVINO's CPU plugin runs fp32, bf16, fp16"),
    (["eval", "{fp32}", "--runtime", "onnxruntime", "--precision", "bf16", "--limit", "2"],
     "--precision bf16: applies to the openvino runtime"),
    (["eval", "{fp32}", "--runtime", "tensorflow", "--limit", "2"], "--runtime tensorflow: expected one of"),
    (["bench", "{root}/lonely.xml", "--runs", "1"], "OpenVINO IR without its weights file"),
    (["export", "{ckpt}", "-o", "{root}/x.onnx", "--no-compress-weights"], "--no-compress-weights: applies to"),
    (["export", "{ckpt}", "-o", "{root}/x.onnx", "--format", "openvino"], "an OpenVINO IR name must end in .xml"),
])
def test_bad_input_is_one_line_exit_2(files, needs_openvino, capsys: pytest.CaptureFixture, argv: list,
                                      message: str) -> None:
    Path(files["root"], "lonely.xml").write_text("<net/>")
    assert main([a.format(**files) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
