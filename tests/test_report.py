"""Reports: table with ratios and fronts, max-drop picks, runtime choice, plots and self-contained HTML; bad input."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from compress.errors import HGCError
from compress.nets import checkpoint
from compress.nets.hourglass import StackedHourglass
from compress.packed.stages import STAGES
from compress.pareto import pareto_front
from compress.recipe import load_recipe
from compress.report import build_report
from compress.report_plots import plot_macs, short_label
from compress.report_size import size_section, size_table
from compress.results import results_table
from compress.runner import run_recipe

# name, steps, PCKh, MB, onnxruntime-cpu ms, torch-cpu ms
RUNS = [("baseline", 0, 86.0, 10.0, 20.0, 30.0),
        ("distill-finetune", 1, 86.4, 9.9, 20.5, 30.0),
        ("prune50", 2, 85.3, 5.2, 11.0, 15.0),
        ("prune70", 2, 82.0, 3.1, 7.5, 9.0),
        ("prune50-int8", 3, 84.9, 1.4, 6.0, 15.0),
        ("dws-swap", 1, 83.0, 6.0, 14.0, 12.0)]


def _results(name: str, n_steps: int, pckh: float, mb: float, ort: float, torch_ms: float) -> dict:
    latency = [{"runtime": rt, "batch": b, "p50_ms": ms * b ** 0.8, "p90_ms": ms * b ** 0.8 * 1.1, "threads": 2}
               for rt, ms in (("onnxruntime-cpu", ort), ("torch-cpu", torch_ms)) for b in (1, 8)]
    return {"format": "hgc-results/1", "name": name, "steps": [{"op": "finetune"}] * n_steps, "precision": "fp32",
            "pckh_mean": pckh, "pckh01_mean": pckh / 3, "auc": pckh * 0.6, "pckh": {"Head": 95.0, "Mean": pckh},
            "params": int(mb * 250_000), "macs": int(mb * 4e8), "bytes": int(mb * 1e6), "gzip_bytes": int(mb * 9e5),
            "lzma_bytes": int(mb * 8.5e5), "latency": latency, "quick": False, "evaluate": {"samples": 2000},
            "machine": {"cpu": "Test CPU"}, "artifact": {"path": "final/model.onnx"}}


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    for run in RUNS:
        (tmp_path / "runs" / run[0]).mkdir(parents=True)
        (tmp_path / "runs" / run[0] / "results.json").write_text(json.dumps(_results(*run)))
    return tmp_path / "runs"


def test_report_files_table_fronts_and_picks(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    rep = build_report([str(runs)], str(out), max_drop=1.0, runtime="onnxruntime-cpu")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["results.csv", "report.md", "report.html", "pckh_vs_latency.png", "pckh_vs_latency.svg",
         "pckh_vs_size.png", "pckh_vs_size.svg", "pckh_latency_vs_macs.png", "pckh_latency_vs_macs.svg"])
    assert rep.baseline == "baseline" and rep.latency == "p50_ms:onnxruntime-cpu:b1"
    table = rep.table.set_index("run")
    assert table.loc["prune50", "x_smaller"] == pytest.approx(10.0 / 5.2)
    assert table.loc["prune50", "x_faster"] == pytest.approx(20.0 / 11.0)
    assert table.loc["prune70", "d_pckh"] == pytest.approx(-4.0)
    expected = pareto_front(rep.table, maximize="pckh", minimize="latency_ms")
    assert list(rep.table.front_latency) == expected
    assert table.loc["prune50-int8", "front"] == "latency, size" and table.loc["baseline", "front"] == "latency"
    assert table.loc["dws-swap", "front"] == ""
    assert rep.smallest == "prune50" and rep.fastest == "prune50"  # prune50-int8 (84.9) lies just outside
    assert rep.table.run.iloc[0] == "baseline"
    csv = pd.read_csv(out / "results.csv")
    assert len(csv) == len(RUNS) and {"front", "x_smaller", "x_faster", "d_pckh"} <= set(csv.columns)
    md = (out / "report.md").read_text()
    assert "| run | runtime | steps |" in md and "**smallest**: `prune50` on onnxruntime-cpu" in md
    assert "pckh_vs_size.png" in md and "![PCKh and latency vs MACs](pckh_latency_vs_macs.png)" in md
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and 'src="http' not in page and "<table" in page
    assert (out / "pckh_vs_latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (out / "pckh_vs_size.svg").read_text()


def test_max_drop_runtime_batch_and_baseline_choices(runs: Path, tmp_path: Path) -> None:
    tight = build_report([str(runs)], str(tmp_path / "a"), max_drop=0.5)
    assert tight.smallest == "distill-finetune" and tight.fastest == "baseline"
    loose = build_report([str(runs)], str(tmp_path / "a"), max_drop=1.2)
    assert loose.smallest == "prune50-int8" and loose.fastest == "prune50-int8"
    torch_rep = build_report([str(runs)], str(tmp_path / "b"), max_drop=5.0, runtime="torch-cpu", batch=8)
    assert torch_rep.latency == "p50_ms:torch-cpu:b8" and torch_rep.fastest == "prune70"
    assert torch_rep.table.set_index("run").loc["dws-swap", "front_latency"]
    other = build_report([str(runs)], str(tmp_path / "c"), baseline="prune50", runtime="onnxruntime-cpu")
    assert other.baseline == "prune50" and other.table.set_index("run").loc["prune50", "x_smaller"] == 1.0
    with pytest.raises(HGCError, match="--runtime onnxruntime-cuda: no run was timed with it"):
        build_report([str(runs)], str(tmp_path / "d"), runtime="onnxruntime-cuda")
    with pytest.raises(HGCError, match="--batch 4: torch-cpu was timed at batch 1, 8"):
        build_report([str(runs)], str(tmp_path / "d"), runtime="torch-cpu", batch=4)
    with pytest.raises(HGCError, match="--baseline nope: no such run"):
        build_report([str(runs)], str(tmp_path / "d"), baseline="nope")
    assert not (tmp_path / "d").exists()


def test_without_a_baseline_ratios_are_blank(runs: Path, tmp_path: Path) -> None:
    for name in ("baseline", "distill-finetune"):
        (runs / name / "results.json").unlink()
    rep = build_report([str(runs)], str(tmp_path / "r"), max_drop=1.0)
    assert rep.baseline is None and rep.table.x_smaller.isna().all()
    assert rep.smallest == "prune50-int8"  # within 1.0 of the best run (prune50, 85.3)
    assert "No baseline run" in (tmp_path / "r" / "report.md").read_text()


def test_bad_input_is_one_error_and_nothing_is_written(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HGCError, match="no results.json found under"):
        build_report([str(empty)], str(out))
    with pytest.raises(HGCError, match="no such file or directory"):
        build_report([str(tmp_path / "missing")], str(out))
    broken = runs / "prune70" / "results.json"
    broken.write_text('{"format": "hgc-results/1", "name": ')
    with pytest.raises(HGCError, match=f"{broken}: corrupt results file"):
        build_report([str(runs)], str(out))
    broken.write_text(json.dumps({**_results(*RUNS[3]), "bytes": "many"}))
    with pytest.raises(HGCError, match=f"{broken}: corrupt results file: 'bytes'"):
        build_report([str(runs)], str(out))
    broken.write_text(json.dumps({"rows": []}))
    with pytest.raises(HGCError, match="not an hgc results file"):
        build_report([str(runs)], str(out))
    broken.write_text(json.dumps(_results(*RUNS[2])))  # a second copy of prune50
    with pytest.raises(HGCError, match="run 'prune50' appears twice"):
        results_table([str(runs)])
    assert not out.exists()


def test_short_labels_keep_the_swept_values() -> None:
    assert short_label("ft@steps.0.finetune.steps=10,steps.0.finetune.lr=0.001") == "ft@steps=10,lr=0.001"
    assert short_label("baseline") == "baseline" and short_label("ft@1a2b3c4d") == "ft@1a2b3c4d"


def test_latency_rows_that_did_not_time_the_artifact_are_ignored(runs: Path, tmp_path: Path) -> None:
    row = _results(*RUNS[4])  # prune50-int8
    skipped = {**row, "precision": "int8", "skipped_runtimes": {"torch-cpu": "artifact is int8 ONNX"}}
    (runs / "prune50-int8" / "results.json").write_text(json.dumps(skipped))
    legacy = _results(*RUNS[3])  # an older results file: torch-cpu timed the fp32 checkpoint of an int8 artifact
    legacy.update(precision="int8", latency=[{**lat, "timed": "model.pt" if lat["runtime"] == "torch-cpu"
                                              else "model.int8.onnx"} for lat in legacy["latency"]])
    (runs / "prune70" / "results.json").write_text(json.dumps(legacy))
    rep = build_report([str(runs)], str(tmp_path / "r"), runtime="torch-cpu", batch=1)
    table = rep.table.set_index("run")
    assert table.loc["prune50-int8", "latency_ms"] != table.loc["prune50-int8", "latency_ms"]  # NaN
    assert pd.isna(table.loc["prune70", "latency_ms"]) and table.loc["prune50", "latency_ms"] == 15.0
    assert table.loc["prune50-int8", "p50_ms:onnxruntime-cpu:b1"] == 6.0


def test_output_path_that_is_a_file_is_one_error(runs: Path, tmp_path: Path) -> None:
    occupied = tmp_path / "occupied"
    occupied.write_text("x")
    for out in (occupied, occupied / "sub"):
        with pytest.raises(HGCError, match=f"-o {out}: not a directory"):
            build_report([str(runs)], str(out))


def test_int8_runs_get_a_kernel_section(runs: Path, tmp_path: Path) -> None:
    row = {**_results(*RUNS[4]), "precision": "int8"}  # prune50-int8
    row["steps"] = [{"op": "finetune"}, {"op": "quantize", "metrics": {
        "int8_convs": 98, "conv_layers": 102, "int8_norm_convs": 40, "fp32_nodes": 4,
        "float_ops": {"Conv": 4, "ConvTranspose": 1}}}]
    (runs / "prune50-int8" / "results.json").write_text(json.dumps(row))
    fp16 = {**_results(*RUNS[3]), "precision": "fp16", "steps": [{"op": "quantize", "metrics": {"int8_convs": 0}}]}
    (runs / "prune70" / "results.json").write_text(json.dumps(fp16))
    build_report([str(runs)], str(tmp_path / "r"))
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## int8 kernels" in md and "| prune70 |" not in md.split("## int8 kernels")[1]
    assert "| prune50-int8 | 98 / 102 | 40 | 4 | Conv 4, ConvTranspose 1 |" in md
    all_int8 = {**row, "name": "all-int8", "steps": [{"op": "quantize", "metrics": {"int8_convs": 102, "float_ops": {}}}]}
    (runs / "all-int8").mkdir()
    (runs / "all-int8" / "results.json").write_text(json.dumps(all_int8))
    build_report([str(runs)], str(tmp_path / "r2"))
    assert "| all-int8 | 102 /  |  |  | — |" in (tmp_path / "r2" / "report.md").read_text()
    assert "| baseline |" not in md.split("## int8 kernels")[1]  # float runs have no kernel row


def test_no_kernel_section_without_int8_runs(runs: Path, tmp_path: Path) -> None:
    build_report([str(runs)], str(tmp_path / "r"))
    assert "## int8 kernels" not in (tmp_path / "r" / "report.md").read_text()


def test_runtime_dimension_one_row_per_run_and_runtime(runs: Path, tmp_path: Path) -> None:
    """openvino-cpu beside onnxruntime-cpu: PCKh as each runtime ran it, executed precision, front over all rows."""
    for name, _, pckh, _, ort, _ in RUNS:
        path = runs / name / "results.json"
        row = json.loads(path.read_text())
        ov_ms = ort * 0.7 if name != "prune50-int8" else ort * 1.5
        row["latency"] = [lat for lat in row["latency"] if lat["runtime"] == "onnxruntime-cpu"] + [
            {"runtime": "openvino-cpu", "batch": b, "p50_ms": ov_ms * b ** 0.8, "p90_ms": ov_ms, "threads": 1,
             "streams": 1, "precision_hint": "bf16", "executed": "fp32 (run as bf16)"} for b in (1, 8)]
        row["accuracy_by_runtime"] = {"openvino-cpu": {"pckh_mean": pckh - 0.3, "pckh01_mean": 1.0, "auc": 2.0,
                                                       "executed": "fp32 (run as bf16)", "precision_hint": "bf16"}}
        row["machine"] = {"cpu": "Test CPU", "isa": "avx2 fma avx512_vnni avx512_bf16 amx_bf16 amx_int8",
                          "openvino_capabilities": "FP32 INT8 BF16"}
        path.write_text(json.dumps(row))
    rep = build_report([str(runs)], str(tmp_path / "r"), max_drop=1.5)
    table = rep.table
    assert rep.runtimes == ["onnxruntime-cpu", "openvino-cpu"] and len(table) == 2 * len(RUNS)
    assert list(table.front_latency) == pareto_front(table, maximize="pckh", minimize="latency_ms")
    ov = table[table.runtime == "openvino-cpu"].set_index("run")
    ort = table[table.runtime == "onnxruntime-cpu"].set_index("run")
    assert ov.loc["prune50", "pckh"] == pytest.approx(85.0) and ort.loc["prune50", "pckh"] == 85.3
    assert ov.loc["prune50", "precision"] == "fp32 (run as bf16)" and ort.loc["prune50", "precision"] == "fp32"
    assert ov.loc["prune50", "x_faster"] == pytest.approx(14.0 / 7.7)  # vs the baseline on openvino-cpu
    assert ort.loc["prune50", "x_vs_best_base"] == pytest.approx(14.0 / 11.0)  # vs the baseline's best runtime
    assert ov.loc["prune50", "d_pckh"] == pytest.approx(-0.7)
    assert (rep.fastest, rep.fastest_runtime) == ("prune50-int8", "onnxruntime-cpu")  # its OpenVINO row is slower
    assert (rep.smallest, rep.smallest_runtime) == ("prune50-int8", "onnxruntime-cpu")  # 84.6 on openvino-cpu
    md = (tmp_path / "r" / "report.md").read_text()
    assert "**fastest**: `prune50-int8` on onnxruntime-cpu (fp32) — 1.400 MB, 6 ms" in md
    # a target set in one runtime is read off that runtime's own line (prune50-int8 runs 9 ms in OpenVINO)
    assert "- **fastest on openvino-cpu**: `prune50` on openvino-cpu (fp32 (run as bf16)) — 5.200 MB, 7.7 ms, " \
           "PCKh@0.5 85.00 (-0.70), 1.82× faster;" in md
    assert "fastest on onnxruntime-cpu" not in md  # the overall pick's runtime has no second line
    assert "| baseline | openvino-cpu | (none) |  | fp32 (run as bf16) | 85.70 |" in md
    assert "int8 on amx_int8; bf16 on amx_bf16; OpenVINO CPU capabilities FP32 INT8 BF16" in md
    only = build_report([str(runs)], str(tmp_path / "o"), runtime="openvino-cpu")
    assert set(only.table.runtime) == {"openvino-cpu"} and len(only.table) == len(RUNS)


def test_no_size_section_without_a_packed_run(runs: Path, tmp_path: Path) -> None:
    rep = build_report([str(runs)], str(tmp_path / "r"))
    assert rep.sizes.empty and "Sizes of the packed models" not in (tmp_path / "r" / "report.md").read_text()
    assert not (tmp_path / "r" / "sizes.csv").exists()


FAST = ("evaluate: {limit: 4, batch_size: 4}\n"
        "measure: {runtimes: [onnxruntime-cpu], batch: [1], runs: 2, warmup: 0, threads: 1}\n")


def test_a_packed_run_gets_the_size_table_whose_stage_factors_multiply_to_its_ratio(tmp_path: Path,
                                                                                  tiny_config) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    base = tmp_path / "base.pt"
    checkpoint.save(StackedHourglass(tiny_config), base)
    body = ("steps:\n  - sparsify: {sparsity: 0.6, steps: 2, batch_size: 2, end: 0.0, updates: 1}\n"
            "  - cluster: {k: 4, tune: null}\n  - pack: {compare_coders: true}\n")
    (tmp_path / "dc.yaml").write_text(f"name: dc\n{body}{FAST}")
    try:
        run_recipe(load_recipe(tmp_path / "dc.yaml"), checkpoint=str(base), out=str(tmp_path / "runs"), progress=False)
    finally:
        torch.set_num_threads(threads)
    runs = tmp_path / "runs"
    row = json.loads((runs / "dc" / "results.json").read_text())
    assert row["unpacked_onnx"]["bytes"] > row["unpacked_onnx"]["lzma_bytes"] > row["bytes"]
    assert row["float_values"] == row["steps"][-1]["metrics"]["sizes"]["weights"]
    assert row["float_values"] == sum(t.numel() for t in StackedHourglass(tiny_config).state_dict().values()
                                      if t.is_floating_point())
    # the baseline: the same network unpruned as an fp32 ONNX (a real run of it costs one more export)
    base_row = {**row, "name": "baseline", "steps": [], "artifact": {"path": "final/model.onnx"}, "precision": "fp32",
                **{k: row["unpacked_onnx"][k] for k in ("bytes", "gzip_bytes", "lzma_bytes")}}
    del base_row["unpacked_onnx"]
    (runs / "baseline").mkdir()
    (runs / "baseline" / "results.json").write_text(json.dumps(base_row))

    rep = build_report([str(runs)], str(tmp_path / "r"))
    sizes = rep.sizes.set_index("run")
    assert list(sizes.index) == ["baseline", "dc"]
    dc = sizes.loc["dc"]
    assert dc.total_x == pytest.approx(base_row["bytes"] / row["bytes"])
    assert math.prod(dc[k] for k in STAGES) == pytest.approx(dc.total_x, rel=1e-12)
    assert dc.pruning_x == 1.0 and dc.sparsity_x > 1.0 and dc.clustering_x > 1.0  # unpruned, sparse, 4 values
    assert dc.pckh == row["pckh_mean"] and dc.onnx_bytes == row["unpacked_onnx"]["bytes"]
    assert sizes.loc["baseline", "onnx_bytes"] == base_row["bytes"]
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Sizes of the packed models" in md and "| dc |" in md and "ans (used)" in md
    assert "Sizes of the packed models" in (tmp_path / "r" / "report.html").read_text()
    assert len(pd.read_csv(tmp_path / "r" / "sizes.csv")) == 2

    del base_row["float_values"]  # written before the runner recorded it: counted in the base checkpoint
    (runs / "baseline" / "results.json").write_text(json.dumps(base_row))
    again = size_table(results_table([str(runs)]), "baseline").set_index("run")
    assert again.loc["dc", "pruning_x"] == 1.0
    base.unlink()
    blank = size_table(results_table([str(runs)]), "baseline")
    assert math.isnan(blank.set_index("run").loc["dc", "pruning_x"])
    assert blank.set_index("run").loc["dc", "sparsity_x"] == dc.sparsity_x
    assert "ONNX × and pruning × are blank" in "\n".join(size_section(blank, pd.DataFrame(), str))


def test_macs_figure_needs_two_distinct_mac_counts(runs: Path, tmp_path: Path) -> None:
    frame = results_table([str(runs / "baseline")]).assign(label="baseline", latency_ms=20.0)
    assert plot_macs(frame, "baseline", "ms") is None  # one run: nothing to compare
    two = pd.concat([frame, frame.assign(run="p", label="p", macs=frame.macs / 2, latency_ms=5.0)])
    png, svg = plot_macs(two, "baseline", "ms")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and "<svg" in svg.decode()
    untimed = two.assign(latency_ms=float("nan")).drop(columns="label")  # runs with measure.runtimes: []
    assert plot_macs(untimed, "baseline", "ms") is not None
    mixed = pd.concat([two.assign(runtime="onnxruntime-cpu"), two.assign(runtime="openvino-cpu", pckh=99.0)])
    assert plot_macs(mixed, "baseline", "ms", runtime="openvino-cpu") is not None
