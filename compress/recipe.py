"""Recipes: the YAML file that says what to do to a checkpoint, validated completely before anything runs.

A recipe names a base checkpoint, a teacher, a data set, a list of single-key steps ``op: {params}`` (ops
from ``compress.steps``) and how the final artifact is evaluated and measured. Every problem is one
``HGCError`` line naming the file and the path inside it (``steps[1].quantize.precision: …``).
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from compress.data.dataset import train_spec
from compress.errors import HGCError
from compress.runtime_openvino import available as openvino_available
from compress.steps import Params, bounded, choice, describe, get_op, items, option, registered_ops, unknown_key_error

# runtime name → (what is timed: "onnx" artifact or "pt" checkpoint, device, onnxruntime provider, compile)
RUNTIMES: dict[str, tuple[str, str, str | None, bool]] = {
    "onnxruntime-cpu": ("onnx", "cpu", "cpu", False),
    "onnxruntime-cuda": ("onnx", "cuda", "cuda", False),
    "onnxruntime-tensorrt": ("onnx", "cuda", "tensorrt", False),
    "torch-cpu": ("pt", "cpu", None, False),
    "torch-cuda": ("pt", "cuda", None, False),
    "torch.compile-cpu": ("pt", "cpu", None, True),
    "torch.compile-cuda": ("pt", "cuda", None, True),
    "openvino-cpu": ("onnx", "cpu", None, False),  # OpenVINO's CPU plugin (the openvino extra)
}
TOP_KEYS = ("name", "description", "base", "teacher", "data", "eval_data", "steps", "evaluate", "measure")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@=,+-]{0,119}")
DEFAULT_BASE = "models/hg2-128.pt"


def runtime_engine(name: str) -> str:
    """The engine behind a ``measure.runtimes`` name: ``onnxruntime``, ``openvino`` or ``torch``."""
    return "torch" if name.startswith("torch") else name.rsplit("-", 1)[0]


def default_runtimes() -> list[str]:
    """onnxruntime-cpu and torch-cpu, plus openvino-cpu where the openvino extra is installed.

    Decided when the recipe is read; the normalized recipe (``recipe.yaml`` of the run) records the list.
    """
    return ["onnxruntime-cpu", "torch-cpu"] + (["openvino-cpu"] if openvino_available() else [])


@dataclass
class EvaluateParams(Params):
    """How the final artifact is scored: split, test-time flip, first ``limit`` samples (None: all)."""

    split: str = choice("val", ("val", "test"), "synthetic split to score on (MPII: the given annotations)")
    flip: bool = option(False, "test-time flip averaging")
    limit: int | None = bounded(None, 1, doc="first N samples only (None: the whole split)", scale="eval")
    batch_size: int = bounded(32, 1, doc="evaluation batch size")


@dataclass
class MeasureParams(Params):
    """How the final artifact is timed: runtimes, batch sizes, timed runs, warm-up and threads."""

    runtimes: list[str] = items(default_runtimes, "runtimes to time (and to score on: OpenVINO evaluates as it runs; "
                                "default: onnxruntime-cpu, torch-cpu, and openvino-cpu when installed)",
                                choices=tuple(RUNTIMES))
    batch: list[int] = items(lambda: [1, 8], "batch sizes to time", low=1)
    runs: int = bounded(50, 1, doc="timed runs per runtime and batch (≥ 50 for reported numbers)", scale="runs")
    warmup: int = bounded(10, 0, doc="untimed warm-up runs", scale="warmup")
    threads: int | None = bounded(None, 1, doc="intra-op threads (None: all available cores)")

    def check(self) -> None:
        if self.runtimes and not self.batch:
            raise HGCError("batch: give at least one batch size to time")


@dataclass
class Step:
    """One validated step: op name and its parameter dataclass."""

    op: str
    params: Params

    def to_dict(self) -> dict[str, Any]:
        return {self.op: self.params.to_dict()}


@dataclass
class Recipe:
    """A validated recipe (every default filled in); ``to_dict`` gives the normalized YAML."""

    name: str
    base: str = DEFAULT_BASE
    description: str = ""
    teacher: str = "base"
    data: str = "synthetic"
    eval_spec: str | None = None  # the recipe's ``eval_data`` as written (None: derived, synthetic only)
    steps: list[Step] = field(default_factory=list)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    measure: MeasureParams = field(default_factory=MeasureParams)
    source: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain data with defaults filled in (the run directory keeps it as recipe.yaml)."""
        return {"name": self.name, "description": self.description, "base": self.base, "teacher": self.teacher,
                "data": self.data, "eval_data": self.eval_spec, "steps": [s.to_dict() for s in self.steps],
                "evaluate": self.evaluate.to_dict(), "measure": self.measure.to_dict()}

    def train_data(self) -> str:
        """Data spec training steps draw from (synthetic → its endless train stream)."""
        return train_spec(self.data)

    def eval_data(self) -> str:
        """Data spec of the final evaluation: the recipe's ``eval_data``, else ``synthetic:<evaluate.split>``.

        Training and calibration draw from ``data``; the final score comes from this held-out split
        (``parse_recipe`` requires it for MPII data and refuses the training annotations).
        """
        return self.eval_spec or f"synthetic:{self.evaluate.split}"


def _where(source: str, path: str) -> str:
    return f"{source}: {path}" if source else path


def parse_recipe(raw: Any, source: str = "") -> Recipe:
    """Validate a loaded YAML document and build the ``Recipe`` (errors prefixed with ``source``).

    Every op's parameters go through its registered schema, so the whole recipe is checked before a step runs.
    """
    if not isinstance(raw, dict):
        raise HGCError(f"{source or 'recipe'}: expected a mapping with keys {', '.join(TOP_KEYS)}, "
                       f"got {type(raw).__name__}")
    for key in raw:
        if key not in TOP_KEYS:
            raise unknown_key_error(str(key), list(TOP_KEYS), source or "recipe")
    default_name = Path(source).stem if source else ""
    fields: dict[str, Any] = {}
    for key in ("name", "description", "base", "teacher", "data", "eval_data"):
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise HGCError(f"{_where(source, key)}: expected a string, got {value!r}")
        fields[key] = value
    name = fields.setdefault("name", default_name)
    if not NAME_RE.fullmatch(name or ""):
        raise HGCError(f"{_where(source, 'name')}: {name!r} is not a usable run name "
                       "(letters, digits and . _ @ = , + - ; at most 120 characters)")
    data = fields.get("data", "synthetic")
    if data.partition(":")[0] not in ("synthetic", "mpii") or data.startswith("synthetic:"):
        raise HGCError(f"{_where(source, 'data')}: {data!r} is not synthetic or mpii:ANNOT[:IMAGES]")
    _check_eval_data(data, fields.get("eval_data"), source)
    fields["eval_spec"] = fields.pop("eval_data", None)
    steps = _parse_steps(raw.get("steps"), source)
    evaluate = EvaluateParams.build(raw.get("evaluate"), _where(source, "evaluate"))
    measure = MeasureParams.build(raw.get("measure"), _where(source, "measure"))
    return Recipe(**fields, steps=steps, evaluate=evaluate, measure=measure, source=source)


def _check_eval_data(data: str, eval_data: str | None, source: str) -> None:
    """``eval_data`` is a held-out split: synthetic:val|test or mpii:ANNOT[:IMAGES] with other annotations.

    It may be left out only for synthetic data (then ``synthetic:<evaluate.split>``); MPII recipes must name
    the annotations the final evaluation scores, never the ones they train and calibrate on.
    """
    where = _where(source, "eval_data")
    if eval_data is None:
        if data.startswith("mpii:"):
            raise HGCError(f"{where}: required when data is {data!r}: name the held-out annotations the final "
                           "evaluation scores (mpii:ANNOT[:IMAGES]); data is for training and calibration only")
        return
    kind = eval_data.partition(":")[0]
    if eval_data not in ("synthetic:val", "synthetic:test") and not (kind == "mpii" and eval_data.count(":") >= 1
                                                                    and eval_data.split(":")[1]):
        raise HGCError(f"{where}: {eval_data!r} is not synthetic:val, synthetic:test or mpii:ANNOT[:IMAGES]")
    if kind == "mpii" and data.startswith("mpii:") and \
            os.path.normpath(eval_data.split(":")[1]) == os.path.normpath(data.split(":")[1]):
        raise HGCError(f"{where}: {eval_data!r} scores the annotations data trains on; "
                       "give held-out annotations")


def _parse_steps(raw: Any, source: str) -> list[Step]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise HGCError(f"{_where(source, 'steps')}: expected a list of single-key maps `- op: {{params}}`")
    steps = []
    for i, item in enumerate(raw):
        where = _where(source, f"steps[{i}]")
        if isinstance(item, str):
            item = {item: None}
        if not isinstance(item, dict) or len(item) != 1:
            raise HGCError(f"{where}: expected a single-key map `op: {{params}}`, got {item!r}")
        (op, params), = item.items()
        spec = get_op(str(op), where)
        steps.append(Step(op=spec.name, params=spec.params.build(params, f"{where}.{op}")))
    _check_artifact_last(steps, source)
    return steps


def _check_artifact_last(steps: list[Step], source: str) -> None:
    """Only the last step may write an artifact: later steps change the model and the file would be dropped."""
    for i, step in enumerate(steps[:-1]):
        if get_op(step.op, "").makes_artifact(step.params):
            last = len(steps) - 1
            raise HGCError(f"{_where(source, f'steps[{i}]')}: {step.op} writes an artifact that steps[{last}] "
                           f"{steps[-1].op} would drop; an artifact-making step must be the last step")


def read_yaml(path: str | os.PathLike) -> Any:
    """A YAML file loaded with ``yaml.safe_load``; missing files and syntax errors are one line.

    ``safe_load`` never builds Python objects, so a recipe cannot run code.
    """
    if not os.path.isfile(path):
        raise HGCError(f"{path}: no such recipe file")
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except UnicodeDecodeError as exc:
        raise HGCError(f"{path}: not a UTF-8 text file (byte {exc.start}: {exc.reason})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise HGCError(f"{path}: not valid YAML{where}: {problem}") from None


def load_recipe(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read, override (``{"steps.0.finetune.steps": 10}``) and validate a recipe file.

    Override paths must name a setting the recipe has (defaults included); a run with overrides gets
    the name ``<name>@<path>=<value>,…`` (or ``<name>@<hash>``), ``name`` overrides setting ``<name>``.
    """
    source = str(path)
    raw = read_yaml(path)
    if not overrides:
        return parse_recipe(raw, source)
    normalized = parse_recipe(raw, source).to_dict()
    raw = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        _check_path(normalized, dotted, source)
        _assign(raw, dotted.split("."), value)
    recipe = parse_recipe(raw, source)
    recipe.overrides = dict(overrides)
    rest = {k: v for k, v in overrides.items() if k != "name"}
    if rest:
        recipe.name = run_name(recipe.name, rest)
    return recipe


def _check_path(doc: Any, dotted: str, source: str) -> None:
    """Fail unless ``dotted`` names an existing setting of the normalized recipe ``doc``."""
    node, walked = doc, []
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            at = ".".join(walked) or "the recipe"
            if isinstance(node, dict):
                close = difflib.get_close_matches(part, [str(k) for k in node], n=1)
                has = f"did you mean {'.'.join([*walked, close[0]])}?" if close else \
                    f"{at} has: {', '.join(map(str, node))}"
            elif isinstance(node, list):
                has = f"{at} has indices 0..{len(node) - 1}" if node else f"{at} is empty"
            elif node is None:
                has = f"{at} is not set; set the whole mapping, e.g. --set '{at}={{{part}: …}}'"
            else:
                has = f"{at} is {node!r}, not a mapping"
            raise HGCError(f"--set {dotted}: no such setting in {source} ({has})")
        walked.append(part)


def _assign(raw: Any, parts: list[str], value: Any) -> None:
    """Set ``value`` at ``parts`` inside the raw YAML, creating the mappings the YAML left out."""
    node = raw
    for i, part in enumerate(parts[:-1]):
        key: Any = int(part) if isinstance(node, list) else part
        child = node[key] if isinstance(node, list) else node.get(key)
        if isinstance(child, str) and isinstance(node, list):  # `- finetune` shorthand
            child = node[key] = {child: {}}
        if child is None:
            child = {}
            node[key] = child
        node = child
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def format_value(value: Any) -> str:
    """An override value as written on the command line (``0.5``, ``true``, ``[1, 8]``).

    Used in run names, so the directory of a swept run says which value it had.
    """
    return value if isinstance(value, str) else json.dumps(value)


def run_name(name: str, overrides: dict[str, Any]) -> str:
    """``name@path=value,…`` for readable overrides, else ``name@<8-hex hash>`` (stable for equal overrides).

    Every expansion of a sweep gets its own run directory, and the same overrides always find theirs again.
    """
    text = ",".join(f"{k}={format_value(v)}" for k, v in overrides.items())
    readable = f"{name}@{text}"
    if NAME_RE.fullmatch(readable):
        return readable
    digest = hashlib.sha256(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{name}@{digest}"


def check_inputs(recipe: Recipe, checkpoint: str | None = None) -> tuple[str, str | None]:
    """(base checkpoint path, teacher path or None = the base) after checking the files exist.

    ``checkpoint`` replaces the recipe's ``base``; a missing file names the recipe field and the path.
    """
    base = checkpoint or recipe.base
    if not os.path.isfile(base):
        how = "--checkpoint" if checkpoint else _where(recipe.source, "base")
        raise HGCError(f"{how}: {base}: no such checkpoint file"
                       + ("" if checkpoint else " (train one, or pass --checkpoint PATH)"))
    teacher = None if recipe.teacher == "base" else recipe.teacher
    if teacher is not None and not os.path.isfile(teacher):
        raise HGCError(f"{_where(recipe.source, 'teacher')}: {teacher}: no such checkpoint file")
    for key, spec in (("data", recipe.data), ("eval_data", recipe.eval_spec or "")):
        if spec.startswith("mpii:"):
            annotations = spec.split(":")[1]
            if not os.path.exists(annotations):
                raise HGCError(f"{_where(recipe.source, key)}: {annotations}: no such annotation file")
    return base, teacher


def catalog() -> list[dict[str, Any]]:
    """Every recipe op and the ``evaluate``/``measure`` sections with their parameter rows (``describe``).

    What ``hgc recipe ops`` prints: the complete vocabulary of a recipe in one list.
    """
    sections = [{"title": f"op {name}", "doc": spec.doc, "params": describe(spec.params)}
                for name, spec in registered_ops().items()]
    for key, params in (("evaluate", EvaluateParams), ("measure", MeasureParams)):
        sections.append({"title": f"section {key}", "doc": (params.__doc__ or "").strip().splitlines()[0],
                         "params": describe(params)})
    return sections
