"""Recipe validation: every mistake is one line naming the file and the path; overrides; normalization."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from compress.errors import HGCError
from compress.nets import checkpoint
from compress.nets.hourglass import StackedHourglass
from compress.recipe import check_inputs, load_recipe, parse_recipe, run_name

GOOD = """
name: ft
description: test
steps:
  - finetune: {steps: 10, batch_size: 2, lr: 1e-3, distill: {alpha: 0.25}}
  - finetune
evaluate: {limit: 8}
measure: {runtimes: [onnxruntime-cpu], batch: [1]}
"""


def _write(tmp_path: Path, text: str, name: str = "r.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_good_recipe_is_normalized_with_defaults(tmp_path: Path) -> None:
    recipe = load_recipe(_write(tmp_path, GOOD))
    assert recipe.name == "ft" and [s.op for s in recipe.steps] == ["finetune", "finetune"]
    first = recipe.steps[0].params
    assert first.lr == 1e-3 and isinstance(first.lr, float)  # YAML 1.1 reads 1e-3 as a string
    assert first.distill.alpha == 0.25 and recipe.steps[1].params.steps == 1000
    assert recipe.evaluate.limit == 8 and recipe.evaluate.split == "val"
    assert recipe.measure.runs == 50 and recipe.teacher == "base" and recipe.base == "models/hg2-128.pt"
    again = parse_recipe(yaml.safe_load(yaml.safe_dump(recipe.to_dict())), "again")
    assert again.to_dict() == recipe.to_dict()
    assert recipe.eval_data() == "synthetic:val" and recipe.train_data() == "synthetic:train"


def test_name_defaults_to_the_file_stem_and_steps_may_be_empty(tmp_path: Path) -> None:
    recipe = load_recipe(_write(tmp_path, "steps: []\n", "my-base.yaml"))
    assert recipe.name == "my-base" and recipe.steps == []


@pytest.mark.parametrize("text, message", [
    ("steps: [{finetune: {stpes: 3}}]", "steps[0].finetune: unknown key 'stpes' (did you mean 'steps'?)"),
    ("steps: [{finetune: {}}, {quantize: {precision: int4}}]",
     "steps[1].quantize.precision: 'int4' is not one of fp32, fp16, bf16, int8"),
    ("steps: [{quantize: {precision: int8}}, {finetune: {}}]",
     "steps[0]: quantize writes an artifact that steps[1] finetune would drop; an artifact-making step must be "
     "the last step"),
    ("steps: [{quantize: {precision: int8}}, {quantize: {precision: fp16}}]",
     "steps[0]: quantize writes an artifact that steps[1] quantize would drop"),
    ("steps: [{finetune: {steps: ten}}]", "steps[0].finetune.steps: expected int, got 'ten' (str)"),
    ("steps: [{finetune: {steps: 2.5}}]", "steps[0].finetune.steps: expected int, got 2.5"),
    ("steps: [{finetune: {steps: 0}}]", "steps[0].finetune.steps: 0 is outside [1, inf]"),
    ("steps: [{finetune: {distill: {alfa: 1}}}]", "steps[0].finetune.distill: unknown key 'alfa' (did you mean 'alpha'?)"),
    ("steps: [{finetune: {distill: {alpha: 2}}}]", "steps[0].finetune.distill.alpha: 2.0 is outside [0.0, 1.0]"),
    ("steps: [{finetune: {sigma: 0}}]", "steps[0].finetune.sigma: 0.0 must be > 0"),
    ("steps: [{finetune: {lr_milestones: [0]}}]", "steps[0].finetune.lr_milestones: fractions of the run in (0, 1)"),
    ("steps: [{finetun: {}}]", "steps[0]: unknown op 'finetun' (did you mean 'finetune'?)"),
    ("steps: [{finetune: {}, quantize: {}}]", "steps[0]: expected a single-key map"),
    ("steps: {finetune: {}}", "steps: expected a list"),
    ("stesp: []", "unknown key 'stesp' (did you mean 'steps'?)"),
    ("name: [1]", "name: expected a string"),
    ("name: 'a b/c'", "name: 'a b/c' is not a usable run name"),
    ("data: imagenet", "data: 'imagenet' is not synthetic or mpii"),
    ("data: 'mpii:a.json:img'", "eval_data: required when data is 'mpii:a.json:img'"),
    ("{data: 'mpii:a.json:img', eval_data: 'mpii:./a.json:img'}", "eval_data: 'mpii:./a.json:img' scores the "
                                                                  "annotations data trains on"),
    ("eval_data: synthetic:train", "eval_data: 'synthetic:train' is not synthetic:val, synthetic:test or mpii"),
    ("eval_data: [1]", "eval_data: expected a string"),
    ("evaluate: {split: train}", "evaluate.split: 'train' is not one of val, test"),
    ("evaluate: {limit: 0}", "evaluate.limit: 0 is outside"),
    ("measure: {runtimes: [onnx]}", "measure.runtimes[0]: 'onnx' is not one of onnxruntime-cpu"),
    ("measure: {batch: [0]}", "measure.batch[0]: 0 is outside"),
    ("measure: {runs: many}", "measure.runs: expected int"),
    ("- just a list", "expected a mapping"),
    ("a: [1", "not valid YAML (line 2"),
])
def test_bad_recipes_name_file_and_path(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text + "\n")
    with pytest.raises(HGCError) as info:
        load_recipe(path)
    text_out = str(info.value)
    assert text_out.startswith(path) and message in text_out and "\n" not in text_out


def test_missing_files_name_the_field_and_path(tmp_path: Path, tiny_config) -> None:
    with pytest.raises(HGCError, match="no such recipe file"):
        load_recipe(tmp_path / "nope.yaml")
    recipe = load_recipe(_write(tmp_path, "base: models/none.pt\n"))
    with pytest.raises(HGCError, match=r"r\.yaml: base: models/none\.pt: no such checkpoint file"):
        check_inputs(recipe)
    with pytest.raises(HGCError, match=r"--checkpoint: .*other\.pt: no such checkpoint file"):
        check_inputs(recipe, str(tmp_path / "other.pt"))
    ckpt = tmp_path / "m.pt"
    checkpoint.save(StackedHourglass(tiny_config), ckpt)
    assert check_inputs(recipe, str(ckpt)) == (str(ckpt), None)
    teacher = load_recipe(_write(tmp_path, "teacher: gone.pt\n", "t.yaml"))
    with pytest.raises(HGCError, match=r"t\.yaml: teacher: gone\.pt: no such checkpoint file"):
        check_inputs(teacher, str(ckpt))


def test_overrides_apply_rename_and_reject_unknown_paths(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    recipe = load_recipe(path, {"steps.0.finetune.steps": 20, "steps.1.finetune.lr": "5e-4"})
    assert recipe.steps[0].params.steps == 20 and recipe.steps[1].params.lr == 5e-4  # default filled, then set
    assert recipe.name == "ft@steps.0.finetune.steps=20,steps.1.finetune.lr=5e-4"
    assert recipe.overrides == {"steps.0.finetune.steps": 20, "steps.1.finetune.lr": "5e-4"}
    assert load_recipe(path, {"name": "x", "evaluate.flip": True}).name == "x@evaluate.flip=true"
    assert load_recipe(path, {"measure.batch": [1, 8]}).name.startswith("ft@")  # unreadable → hash suffix
    assert run_name("ft", {"measure.batch": [1, 8]}) == run_name("ft", {"measure.batch": [1, 8]})
    for bad, message in [("steps.0.finetune.stpes", "did you mean steps.0.finetune.steps?"),
                         ("steps.7.finetune.steps", "steps has indices 0..1"),
                         ("steps.0.finetune.distill.beta", "steps.0.finetune.distill has: alpha"),
                         ("bogus", "the recipe has: name, description")]:
        with pytest.raises(HGCError, match="--set " + bad.replace(".", r"\.")) as info:
            load_recipe(path, {bad: 1})
        assert message in str(info.value)
    with pytest.raises(HGCError, match=r"steps\[0\]\.finetune\.steps: expected int"):
        load_recipe(path, {"steps.0.finetune.steps": "x"})


def test_eval_data_is_a_held_out_split(tmp_path: Path, tiny_config, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_recipe(_write(tmp_path, "evaluate: {split: test}\n")).eval_data() == "synthetic:test"
    recipe = load_recipe(_write(tmp_path, "data: 'mpii:train.json:img'\neval_data: 'mpii:val.json:img'\n"))
    assert recipe.train_data().startswith("mpii:train.json") and recipe.eval_data() == "mpii:val.json:img"
    assert parse_recipe(yaml.safe_load(yaml.safe_dump(recipe.to_dict())), "again").to_dict() == recipe.to_dict()
    ckpt = tmp_path / "m.pt"
    checkpoint.save(StackedHourglass(tiny_config), ckpt)
    (tmp_path / "train.json").write_text("[]")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(HGCError, match=r"r\.yaml: eval_data: val\.json: no such annotation file"):
        check_inputs(recipe, str(ckpt))


def test_a_recipe_that_is_not_utf8_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("description: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(HGCError, match=f"{path}: not a UTF-8 text file"):
        load_recipe(path)


SHIPPED = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_recipe_validates(path: Path) -> None:
    """Each recipe in recipes/ parses, and its inputs resolve on the shipped small model."""
    from compress.recipe import check_inputs, load_recipe

    recipe = load_recipe(path)
    assert recipe.name == path.stem and recipe.to_dict()["steps"] == [s.to_dict() for s in recipe.steps]
    small = Path(__file__).resolve().parents[1] / "models" / "hg1-32.pt"
    base, _ = check_inputs(recipe, str(small))
    assert Path(base).is_file()
