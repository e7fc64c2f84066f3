"""Every registered recipe op, checked the same way (as timm tests every registered model).

For each op of ``registered_ops()``: its defaults validate; a one-step recipe runs it ``--quick`` on the
shipped ``models/hg1-32.pt``; the step's checkpoint reloads in a fresh process from its config alone and
exports with parity; an artifact, if the op makes one, is a file of the step directory that onnxruntime
opens. A new op is tested by registering it.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest

from compress.export import export_onnx
from compress.nets import checkpoint
from compress.recipe import parse_recipe
from compress.rundir import read_json
from compress.runner import run_recipe
from compress.runtime import load_predictor
from compress.steps import Budget, registered_ops

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "models" / "hg1-32.pt"
OPS = sorted(registered_ops())
RELOAD = """
import json, sys, torch
from compress.nets import checkpoint
model, info = checkpoint.load(sys.argv[1])
torch.manual_seed(0)
image = torch.rand(1, 3, info.config.input_size, info.config.input_size)
with torch.no_grad():
    out = model(image)
print(json.dumps({"shape": list(out.shape), "finite": bool(torch.isfinite(out).all()),
                  "params": sum(p.numel() for p in model.parameters())}))
"""


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("op", OPS)
def test_defaults_validate_and_quick_scaling_is_recorded(op: str) -> None:
    spec = registered_ops()[op]
    params = spec.params.build(None, f"steps[0].{op}")
    assert spec.params.build(params.to_dict(), op).to_dict() == params.to_dict()  # round-trips
    quick = Budget(quick=True).apply(params)
    assert type(quick) is type(params) and Budget(quick=False).apply(params) is params


@pytest.mark.parametrize("op", OPS)
def test_op_runs_quick_on_the_shipped_small_model_and_its_result_reloads_and_exports(op: str, tmp_path: Path) -> None:
    recipe = parse_recipe({"name": f"op-{op}", "steps": [op], "evaluate": {"limit": 4, "batch_size": 4},
                           "measure": {"runtimes": []}}, f"{op}.yaml")
    result = run_recipe(recipe, checkpoint=str(SMALL), out=str(tmp_path / "runs"), quick=True, progress=False)
    step_dir = Path(result.steps[0].dir)
    done = read_json(step_dir / "done.json")
    assert done is not None and done["params_used"] == Budget(quick=True).apply(recipe.steps[0].params).to_dict()
    saved = step_dir / "model.pt"
    _, info = checkpoint.load(saved)
    assert info.lineage[-1]["op"] == op and info.lineage[-1]["params"] == done["params_used"]

    fresh = subprocess.run([sys.executable, "-c", RELOAD, str(saved)], capture_output=True, text=True, check=True,
                           cwd=ROOT)
    row = json.loads(fresh.stdout)
    assert row["finite"] and row["shape"][2:] == [info.config.joints, info.config.input_size // 4,
                                                  info.config.input_size // 4]

    if not done["artifact"]:  # the run's final stage exported the saved step model, parity-checked (≤ 1e-4)
        assert result.results["artifact"]["path"] == "final/model.onnx"
        assert (Path(result.dir) / "final" / "model.onnx").is_file()
    else:  # the artifact is the op's own file: the saved fp32 step model must export too
        exported = export_onnx(str(saved), tmp_path / "reloaded.onnx", parity_images=2)
        assert exported.max_abs_diff <= 1e-4
        artifact = step_dir / done["artifact"]
        assert artifact.is_file() and result.results["artifact"]["path"].endswith(done["artifact"])
        if artifact.suffix == ".onnx":
            ort.InferenceSession(str(artifact), providers=["CPUExecutionProvider"])
        else:  # a packed .hgz: it loads as the step's own network
            assert load_predictor(str(artifact)).input_size == info.config.input_size
    assert result.results["pckh_mean"] is not None
