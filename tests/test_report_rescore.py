"""Re-scoring a report's rows on this machine: which rows, the scores it puts in, the cache, bad input."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

import compress.report_rescore as rescore_mod
from compress.errors import HGCError
from compress.evaluate import evaluate_file
from compress.export import export_onnx
from compress.measure.machine import machine_info
from compress.nets import checkpoint
from compress.nets.config import HourglassConfig
from compress.nets.hourglass import StackedHourglass
from compress.report import build_report
from compress.report_rescore import CACHE, arithmetic, rescore, rescore_reason

VNNI = "avx2 fma avx512f avx512_vnni avx512_bf16"
AVX2 = "avx2 fma"


@pytest.mark.parametrize("row, host, why", [
    ({"runtime": "onnxruntime-cpu", "precision": "int8"}, AVX2, "int8 summed as exact int32"),
    ({"runtime": "onnxruntime-cpu", "precision": "int8"}, VNNI.replace("avx512_bf16", ""), None),
    ({"runtime": "onnxruntime-cpu", "precision": "fp32"}, AVX2, None),
    ({"runtime": "onnxruntime-cpu", "precision": "packed"}, AVX2, None),
    ({"runtime": "openvino-cpu", "precision": "fp32 (run as bf16)"}, AVX2, "OpenVINO's float math bf16 there"),
    ({"runtime": "openvino-cpu", "precision": "int8 (float parts as bf16)"}, AVX2, "int8 summed"),
    ({"runtime": "torch-cpu", "precision": "int8"}, AVX2, None),
    ({"runtime": None, "precision": "int8"}, AVX2, None),
])
def test_rows_whose_arithmetic_differs_here_are_named(row: dict, host: str, why: str | None) -> None:
    reason = rescore_reason({**row, "isa": VNNI}, host)
    assert (reason is None) if why is None else reason.startswith(why)
    assert rescore_reason({**row, "isa": None}, host) is None  # no machine recorded: nothing to compare
    assert rescore_reason({**row, "isa": ""}, host) is None
    assert rescore_reason({**row, "isa": VNNI}, "asimd fp") is None  # not an x86 CPU here: unknown arithmetic


def test_arithmetic_groups_cpus_by_what_decides_the_scores() -> None:
    assert arithmetic("avx2 amx_int8 amx_bf16") == arithmetic("avx2 avx512_vnni avx512_bf16")
    assert arithmetic(AVX2) != arithmetic("avx2 avx_vnni")
    assert arithmetic(AVX2)["bf16"] == "fp32"
    assert arithmetic("") is None and arithmetic("asimd fp") is None


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("rescore")
    model = StackedHourglass(HourglassConfig(stacks=1, features=8, depth=2, input_size=32))
    checkpoint.save(model, root / "m.pt")
    export_onnx(str(root / "m.pt"), str(root / "m.onnx"), parity_images=1)
    return str(root / "m.onnx")


def _frame(path: str) -> pd.DataFrame:
    common = {"artifact": path, "results": "", "artifact_precision": "int8", "eval_data": "synthetic:val",
              "eval_limit": 8, "eval_flip": False, "pckh01": 1.0, "auc": 1.0, "Head": 1.0}
    return pd.DataFrame([{**common, "run": "elsewhere", "runtime": "onnxruntime-cpu", "precision": "int8",
                          "isa": VNNI, "pckh": 99.0},
                         {**common, "run": "here", "runtime": "onnxruntime-cpu", "precision": "int8",
                          "isa": AVX2, "pckh": 98.0}])


def test_rescored_rows_take_this_machines_scores_and_the_cache_repeats_nothing(
        onnx_file: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, changed = rescore(_frame(onnx_file), AVX2, str(tmp_path))
    expected = evaluate_file(onnx_file, "synthetic:val", limit=8).result.to_dict()
    moved, kept = out.iloc[0], out.iloc[1]
    assert moved.pckh == pytest.approx(expected["Mean"]) and moved.rescored_from == 99.0
    assert moved.Head == pytest.approx(expected["Head"]) and moved.auc == pytest.approx(expected["AUC"])
    assert kept.pckh == 98.0 and math.isnan(kept.rescored_from)
    assert changed.to_dict("records") == [{"run": "elsewhere", "runtime": "onnxruntime-cpu", "there": 99.0,
                                           "here": moved.pckh, "reason": rescore_reason(_frame(onnx_file).iloc[0]
                                                                                        .to_dict(), AVX2)}]
    entries = json.loads((tmp_path / CACHE).read_text())["entries"]
    assert len(entries) == 1 and next(iter(entries.values()))["samples"] == 8

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("evaluated again")
    monkeypatch.setattr(rescore_mod, "evaluate", refuse)
    again, _ = rescore(_frame(onnx_file), AVX2, str(tmp_path))
    assert again.pckh.tolist() == out.pckh.tolist()
    with pytest.raises(AssertionError):  # other arithmetic here: another cache key, so it scores again
        rescore(_frame(onnx_file), "avx2 avx_vnni", str(tmp_path))


def test_bad_cache_and_missing_settings_are_one_error(onnx_file: str, tmp_path: Path) -> None:
    (tmp_path / CACHE).write_text("not json")
    with pytest.raises(HGCError, match=f"{CACHE}: not a rescore cache"):
        rescore(_frame(onnx_file), AVX2, str(tmp_path))
    (tmp_path / CACHE).unlink()
    with pytest.raises(HGCError, match="run 'elsewhere' records no evaluation data"):
        rescore(_frame(onnx_file).assign(eval_data=None), AVX2, str(tmp_path))
    gone = _frame(str(tmp_path / "gone.onnx"))
    out, changed = rescore(gone, AVX2, str(tmp_path))  # a file no longer on disk keeps its score, and is named
    assert out.pckh.tolist() == [99.0, 98.0] and changed.run.tolist() == ["elsewhere"]
    assert math.isnan(changed.here[0]) and changed.reason[0].endswith("not scored again: its file is gone")
    (tmp_path / CACHE).write_text(json.dumps({"entries": {"k": {"no": "score"}}}))
    with pytest.raises(HGCError, match="not a rescore cache"):
        rescore(_frame(onnx_file), AVX2, str(tmp_path))


def _archived(root: Path, name: str, onnx: str, pckh: float, isa: str, precision: str) -> None:
    (root / name / "final").mkdir(parents=True)
    shutil.copy(onnx, root / name / "final" / "model.onnx")
    (root / name / "results.json").write_text(json.dumps({
        "format": "hgc-results/1", "name": name, "steps": [{"op": "quantize"}] if precision == "int8" else [],
        "precision": precision, "pckh_mean": pckh, "pckh01_mean": 1.0, "auc": 1.0, "pckh": {"Mean": pckh},
        "params": 10, "macs": 10, "bytes": 100, "latency": [{"runtime": "onnxruntime-cpu", "batch": 1, "p50_ms": 1.0}],
        "evaluate": {"data": "synthetic:val", "samples": 8, "limit": 8, "flip": False},
        "machine": {"cpu": "Elsewhere CPU", "isa": isa}, "artifact": {"path": "final/model.onnx"}}))


def test_a_rescored_report_picks_from_this_machines_scores(onnx_file: str, tmp_path: Path) -> None:
    here = machine_info().get("isa") or ""
    other = AVX2 if arithmetic(here)["int8"] != arithmetic(AVX2)["int8"] else VNNI
    _archived(tmp_path / "runs", "baseline", onnx_file, 50.0, other, "fp32")
    _archived(tmp_path / "runs", "int8", onnx_file, 99.0, other, "int8")  # its recorded score: far above
    recorded = build_report([str(tmp_path / "runs")], str(tmp_path / "r"))
    assert recorded.table.set_index("run").loc["int8", "pckh"] == 99.0
    rep = build_report([str(tmp_path / "runs")], str(tmp_path / "r"), rescore=True)
    table = rep.table.set_index("run")
    expected = evaluate_file(onnx_file, "synthetic:val", limit=8).result.to_dict()["Mean"]
    assert table.loc["int8", "pckh"] == pytest.approx(expected) and table.loc["baseline", "pckh"] == 50.0
    assert rep.notes == ["1 row(s) scored again on this machine (--rescore, table below)"]
    assert (tmp_path / "r" / CACHE).is_file()
    section = (tmp_path / "r" / "report.md").read_text().split("## Scored again on this machine (--rescore)")[1]
    assert "| int8 | onnxruntime-cpu | 99.00 |" in section and "baseline" not in section.split("## ")[0]
