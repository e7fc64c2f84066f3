"""Side-by-side re-timing of a report's rows: which files are re-timed, against which reference."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from compress.errors import HGCError
from compress.export import export_onnx
from compress.io import sha256_file
from compress.measure.machine import machine_info
from compress.nets import checkpoint
from compress.nets.config import HourglassConfig
from compress.nets.hourglass import StackedHourglass
from compress.report import build_report
from compress.report_timing import side_by_side, timed_file
from compress.runtime_openvino import available as openvino_available


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """Two tiny exported hourglasses (16 and 8 features), made once for the module."""
    root, paths = tmp_path_factory.mktemp("sbs"), []
    for name, features in (("base", 16), ("small", 8)):
        model = StackedHourglass(HourglassConfig(stacks=1, features=features, depth=2, input_size=32))
        checkpoint.save(model, root / f"{name}.pt")
        export_onnx(str(root / f"{name}.pt"), str(root / f"{name}.onnx"), parity_images=1)
        paths.append(str(root / f"{name}.onnx"))
    return paths[0], paths[1]


def _rows(base: str, small: str, tmp_path: Path) -> pd.DataFrame:
    runtimes = ["onnxruntime-cpu", "torch-cpu"] + (["openvino-cpu"] if openvino_available() else [])
    rows = [{"run": run, "runtime": rt, "artifact": path, "results": str(tmp_path / run / "results.json"),
             "latency_ms": 123.0, "artifact_precision": "fp32"}
            for run, path in (("baseline", base), ("small", small)) for rt in runtimes]
    rows.append({"run": "gone", "runtime": "onnxruntime-cpu", "artifact": str(tmp_path / "gone.onnx"),
                 "results": "", "latency_ms": 7.0, "artifact_precision": "fp32"})
    return pd.DataFrame(rows)


def test_rows_are_retimed_against_the_baseline_onnx(onnx_files, tmp_path: Path) -> None:
    frame = _rows(*onnx_files, tmp_path)
    out, info = side_by_side(frame, "baseline", batch=1, runs=3, threads=1)
    ort_base = out[(out.run == "baseline") & (out.runtime == "onnxruntime-cpu")].iloc[0]
    assert ort_base.x_faster_sbs == 1.0 and ort_base.latency_ms == ort_base.sbs_ms != 123.0
    retimed = out[out.sbs_ms.notna()]  # the latency column follows the paired ratios, not each row's own p50
    assert ((retimed.latency_ms - ort_base.sbs_ms / retimed.x_faster_sbs).abs() < 1e-9).all()
    torch_rows, gone = out[out.runtime == "torch-cpu"], out[out.run == "gone"].iloc[0]
    assert (torch_rows.latency_ms == 123.0).all() and torch_rows.sbs_ms.isna().all()
    assert gone.latency_ms == 7.0 and math.isnan(gone.x_faster_sbs)
    assert "gone [onnxruntime-cpu]" in info["not_retimed"] and "baseline [torch-cpu]" in info["not_retimed"]
    assert info["files"] == len(out) - len(torch_rows) - 1
    if openvino_available():
        ov_base = out[(out.run == "baseline") & (out.runtime == "openvino-cpu")].iloc[0]
        assert ov_base.x_faster_vs_openvino == 1.0 and info["openvino_reference"] == "baseline [openvino-cpu]"


def test_packed_artifacts_are_timed_through_their_unpacked_onnx(tmp_path: Path) -> None:
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "model.unpacked.onnx").write_bytes(b"x")
    row = {"runtime": "onnxruntime-cpu", "artifact": str(tmp_path / "00-pack" / "model.hgz"),
           "results": str(tmp_path / "results.json")}
    assert timed_file(row) == str(tmp_path / "final" / "model.unpacked.onnx")
    assert timed_file({**row, "runtime": "torch-cpu"}) is None
    (tmp_path / "final" / "model.unpacked.onnx").unlink()
    assert timed_file(row, str(tmp_path)) is None  # no .hgz at that path: not re-timed
    (tmp_path / "00-pack").mkdir()
    (tmp_path / "00-pack" / "model.hgz").write_bytes(b"packed")
    assert timed_file(row) is None  # nothing kept and no scratch directory to unpack into
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    done = scratch / (sha256_file(row["artifact"])[:16] + ".onnx")
    done.write_bytes(b"unpacked before")  # another row of the same .hgz unpacked it: not unpacked again
    assert timed_file({**row, "runtime": "openvino-cpu"}, str(scratch)) == str(done)
    done.unlink()
    with pytest.raises(HGCError, match=r"run 'p': cannot unpack .*model\.hgz to time it"):
        timed_file({**row, "run": "p"}, str(scratch))  # not a packed file: one line naming the run and file


def test_a_baseline_without_an_onnxruntime_row_is_one_line(onnx_files, tmp_path: Path) -> None:
    frame = _rows(*onnx_files, tmp_path)
    with pytest.raises(HGCError, match="baseline 'nope' has no fp32 ONNX"):
        side_by_side(frame, "nope", runs=2)


def _run(root: Path, name: str, onnx: str, steps: int, pckh: float, ms: float, cpu: str = "Test CPU") -> None:
    (root / name / "final").mkdir(parents=True)
    shutil.copy(onnx, root / name / "final" / "model.onnx")
    latency = [{"runtime": "onnxruntime-cpu", "batch": 1, "p50_ms": ms, "threads": 1}]
    (root / name / "results.json").write_text(json.dumps({
        "format": "hgc-results/1", "name": name, "steps": [{"op": "prune"}] * steps, "precision": "fp32",
        "pckh_mean": pckh, "pckh01_mean": pckh / 3, "auc": pckh / 2, "pckh": {"Mean": pckh}, "params": 10,
        "macs": 10, "bytes": 100, "gzip_bytes": 90, "lzma_bytes": 80, "latency": latency, "quick": False,
        "evaluate": {"samples": 8}, "machine": {"cpu": cpu}, "artifact": {"path": "final/model.onnx"}}))


def test_report_side_by_side_replaces_the_recorded_latencies(onnx_files, tmp_path: Path) -> None:
    base, small = onnx_files
    _run(tmp_path / "runs", "baseline", base, 0, 80.0, 1000.0)  # recorded on a busy day: 1 s
    _run(tmp_path / "runs", "small", small, 1, 79.5, 0.001)
    rep = build_report([str(tmp_path / "runs")], str(tmp_path / "r"), side_by_side_rounds=3)
    table = rep.table.set_index("run")
    assert table.loc["baseline", "latency_ms"] < 1000.0 and table.loc["small", "latency_ms"] > 0.001
    assert table.loc["baseline", "x_faster_sbs"] == 1.0 and table.loc["small", "x_faster_sbs"] > 0
    assert "round-robin for 3 rounds" in rep.timing
    assert "×faster paired" in (tmp_path / "r" / "report.md").read_text()
    with pytest.raises(HGCError, match="rounds must be ≥ 0"):
        build_report([str(tmp_path / "runs")], str(tmp_path / "r2"), side_by_side_rounds=-1)


def test_a_retimed_report_names_the_machine_that_timed_it(onnx_files, tmp_path: Path) -> None:
    base, small = onnx_files
    _run(tmp_path / "runs", "baseline", base, 0, 80.0, 10.0, cpu="Made-elsewhere CPU")
    _run(tmp_path / "runs", "small", small, 1, 79.5, 5.0, cpu="Another CPU")
    retimed = build_report([str(tmp_path / "runs")], str(tmp_path / "r"), side_by_side_rounds=2)
    here = machine_info()["cpu"]
    assert retimed.machine.startswith(f"{here} (")  # the timing machine, not the first run's
    [note] = retimed.notes
    assert "Another CPU; Made-elsewhere CPU" in note and f"latencies are this report's ({here})" in note
    recorded = build_report([str(tmp_path / "runs")], str(tmp_path / "r2"))
    assert recorded.machine.startswith("Made-elsewhere CPU (")
    assert recorded.notes == ["latencies come from different machines (Another CPU; Made-elsewhere CPU): ratios "
                              "are not comparable"]
