"""reports/swaps/student_latency.py: every swap recipe's student exported as the op builds it, teacher first."""
from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from compress.nets import checkpoint
from compress.nets.hourglass import StackedHourglass


@pytest.fixture(scope="module")
def student_latency(repo_script):
    return repo_script("reports/swaps/student_latency.py")


def test_students_are_exported_with_their_designs(student_latency, tiny2_config, tmp_path: Path) -> None:
    base = tmp_path / "base.pt"
    checkpoint.save(StackedHourglass(tiny2_config), base)
    recipes = []
    for name, config in (("swap-dws", "{block: dws}"), ("swap-1stack", "{stacks: 1}")):
        recipe = tmp_path / f"{name}.yaml"
        recipe.write_text(f"name: {name}\nbase: {base}\nsteps:\n  - swap: {{config: {config}, steps: 1}}\n")
        recipes.append(str(recipe))
    not_a_swap = tmp_path / "ft.yaml"
    not_a_swap.write_text(f"name: ft\nbase: {base}\nsteps:\n  - finetune: {{steps: 1}}\n")
    files, params = student_latency.export_students(str(base), [*recipes, str(not_a_swap)], tmp_path)
    assert list(files) == ["teacher", "swap-dws", "swap-1stack"]
    assert params["swap-dws"] < params["teacher"] and params["swap-1stack"] < params["teacher"]
    graphs = {name: onnx.load(path).graph for name, path in files.items()}
    depthwise = [n for n in graphs["swap-dws"].node if n.op_type == "Conv"
                 and any(a.name == "group" and a.i > 1 for a in n.attribute)]
    assert depthwise and not any(a.name == "group" and a.i > 1
                                 for n in graphs["teacher"].node for a in n.attribute)
    assert len(graphs["swap-1stack"].node) < len(graphs["teacher"].node)
