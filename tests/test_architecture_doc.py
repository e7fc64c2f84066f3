"""compress/ARCHITECTURE.md's worked example registers an op that really runs in a recipe."""
from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from compress import steps
from compress.recipe import parse_recipe
from compress.rundir import read_json
from compress.runner import run_recipe

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "compress" / "ARCHITECTURE.md"


def _example() -> str:
    section = DOC.read_text().split("## Adding a technique", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the 'Adding a technique' section holds one python example"
    return blocks[0]


def test_the_documented_do_nothing_op_registers_and_runs_in_a_recipe(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    steps.load_techniques()
    monkeypatch.setattr(steps, "_REGISTRY", dict(steps._REGISTRY))  # the example's op vanishes afterwards
    module = types.ModuleType("noop_example")  # as if saved as a module of its own
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(_example(), str(DOC), "exec"), module.__dict__)  # noqa: S102 (the repository's own doc)
    assert "noop" in steps.registered_ops()
    recipe = parse_recipe({"name": "try-noop", "steps": [{"noop": {"repeat": 300}}],
                           "evaluate": {"limit": 4, "batch_size": 4}, "measure": {"runtimes": []}}, "try-noop.yaml")
    result = run_recipe(recipe, checkpoint=str(ROOT / "models" / "hg1-32.pt"), out=str(tmp_path), quick=True,
                        progress=False)
    step = Path(result.steps[0].dir)
    assert read_json(step / "metrics.json")["repeat"] == 3  # 300 scaled by --quick, as recorded
    assert '"event": "noop"' in (step / "log.jsonl").read_text()
    assert result.results["pckh_mean"] is not None
