"""The recipe-step registry and the step contract: op name → parameter schema + function.

The contract (compress/ARCHITECTURE.md §Step contract): ``fn(model, params, ctx) -> StepResult``. An op gets the
current model, its validated parameters (already scaled by ``--quick`` where a field says so) and a
``StepContext`` (data, device, teacher, step directory, logging); it returns a ``StepResult`` — the model,
optionally an artifact file it wrote in the step directory, and its metrics — and mutates nothing else.
Technique modules register ops with ``@register_step(name, Params)``; the runner and ``hgc recipe ops``
only ever look ops up here, so techniques never import each other or the runner.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import json
import math
import pkgutil
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import compress.techniques as package
from compress.errors import HGCError

QUICK_STEP_FRACTION, QUICK_MIN_STEPS = 0.01, 2
# --quick caps per budget kind (a field opts in with ``scale=KIND``); "steps" scales by QUICK_STEP_FRACTION
QUICK_CAPS: dict[str, int] = {"calibration": 32, "scoring": 16, "eval": 32, "runs": 3, "warmup": 1}
SCALES = ("steps", *QUICK_CAPS)


def option(default: Any, doc: str = "", scale: str | None = None) -> Any:
    """A dataclass field with a (immutable) default and a one-line description for ``hgc recipe ops``."""
    return dataclasses.field(default=default, metadata=_meta(doc, scale))


def _meta(doc: str, scale: str | None, **meta: Any) -> dict[str, Any]:
    if scale is not None and scale not in SCALES:
        raise ValueError(f"scale {scale!r} is not one of {', '.join(SCALES)}")
    return {"doc": doc, **({"scale": scale} if scale else {}), **meta}


def choice(default: Any, choices: tuple[Any, ...], doc: str = "") -> Any:
    """A dataclass field whose value must be one of ``choices`` (recorded in the field's metadata)."""
    return dataclasses.field(default=default, metadata={"choices": tuple(choices), "doc": doc})


def bounded(default: Any, low: float | None = None, high: float | None = None, doc: str = "",
            scale: str | None = None) -> Any:
    """A numeric dataclass field that must lie in [low, high] (either end optional).

    ``scale`` names the ``--quick`` budget the field belongs to (``steps``, ``calibration``, ``scoring``,
    ``eval``, ``runs``, ``warmup``): ``Budget.apply`` shrinks it there, in one place for every op.
    """
    return dataclasses.field(default=default, metadata=_meta(doc, scale, low=low, high=high))


def items(factory: Callable[[], Any], doc: str = "", **meta: Any) -> Any:
    """A list/dict field with a fresh default per instance (no shared mutable defaults)."""
    return dataclasses.field(default_factory=factory, metadata=_meta(doc, None, **meta))


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(hint))
    if isinstance(hint, type) and issubclass(hint, Params):
        return "mapping"
    if typing.get_origin(hint) in (list, dict):  # list[SomeParams] reads as list[mapping]
        return f"{typing.get_origin(hint).__name__}[{', '.join(_type_name(a) for a in typing.get_args(hint))}]"
    if isinstance(hint, type):
        return "None" if hint is type(None) else hint.__name__
    return str(hint).replace("typing.", "")


def _nested(hint: Any) -> type | None:
    """The ``Params`` subclass inside ``hint`` (``X`` or ``X | None``), if any."""
    for candidate in (hint, *typing.get_args(hint)):
        if isinstance(candidate, type) and issubclass(candidate, Params):
            return candidate
    return None


def _check(value: Any, hint: Any, name: str, meta: dict[str, Any]) -> Any:
    """``value`` converted to ``hint`` (int → float, mapping → nested params) or an error naming ``name``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check(value, inner[0], name, meta)
    if isinstance(hint, type) and issubclass(hint, Params):
        return value if isinstance(value, hint) else hint.build(value, name)
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    elif origin is list:
        if not isinstance(value, list):
            raise HGCError(f"{name}: expected a list of {_type_name(args[0])}, got {value!r}")
        return [_check(v, args[0], f"{name}[{i}]", meta) for i, v in enumerate(value)]
    elif origin is dict or hint is dict:
        ok = isinstance(value, dict)
    else:
        ok = True
    if not ok:
        raise HGCError(f"{name}: expected {_type_name(hint)}, got {value!r} ({type(value).__name__})")
    if "choices" in meta and value not in meta["choices"]:
        raise HGCError(f"{name}: {value!r} is not one of {', '.join(map(str, meta['choices']))}")
    low, high = meta.get("low"), meta.get("high")
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise HGCError(f"{name}: {value!r} is outside {span}")
    return value


def unknown_key_error(key: str, known: list[str], where: str) -> HGCError:
    """``where: unknown key 'stpes' (did you mean 'steps'?)`` — the one message for every typo'd key.

    Unknown keys are rejected everywhere so a typo never silently falls back to a default.
    """
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known) or 'none'})"
    return HGCError(f"{where}: unknown key {key!r}{hint}")


@dataclass
class Params:
    """Base of every step's parameter dataclass: types, choices and bounds are checked on construction.

    Subclasses declare fields with type hints (``choice``/``bounded`` for allowed values) and may add
    cross-field checks in ``check()``; ``build(mapping, where)`` also rejects unknown keys.
    """

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            setattr(self, f.name, _check(getattr(self, f.name), hints[f.name], f.name, dict(f.metadata)))
        self.check()

    def check(self) -> None:
        """Cross-field validation; raise ``HGCError('field: problem')``."""

    @classmethod
    def build(cls, raw: Any, where: str) -> "Params":
        """Construct from a YAML mapping (``None`` = all defaults); errors are prefixed with ``where``."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise HGCError(f"{where}: expected a mapping of parameters, got {raw!r}")
        known = [f.name for f in dataclasses.fields(cls)]
        for key in raw:
            if key not in known:
                raise unknown_key_error(str(key), known, where)
        try:
            return cls(**raw)
        except HGCError as exc:
            raise HGCError(f"{where}.{exc}") from None
        except TypeError as exc:  # a required field without a value
            raise HGCError(f"{where}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able parameters with every default filled in (what hashes and lineage record)."""
        return dataclasses.asdict(self)


@dataclass
class DistillParams(Params):
    """FPD distillation against the recipe's teacher: alpha · MSE(student, teacher) + (1 − alpha) · MSE(student, gt).

    Shared by the ops that train (``finetune``, ``quantize.qat``); it lives here because techniques never
    import each other.
    """

    alpha: float = bounded(0.5, 0.0, 1.0, doc="weight of the teacher term")


@dataclass(frozen=True)
class Budget:
    """How much work a run may do: the whole budget, or the ``--quick`` smoke-test budget.

    The one place where ``--quick`` shrinks anything: training steps to 1 % (at least 2), and image counts,
    evaluation samples and timed runs to the caps in ``QUICK_CAPS``. Parameter fields opt in with ``scale=``.
    """

    quick: bool = False

    def scale(self, kind: str, value: Any) -> Any:
        """``value`` of budget ``kind`` under this budget (None means "all" and is capped under --quick)."""
        if not self.quick:
            return value
        if kind == "steps":  # 0 stays 0: a phase switched off stays off
            return 0 if value == 0 else max(QUICK_MIN_STEPS, round(value * QUICK_STEP_FRACTION))
        return QUICK_CAPS[kind] if value is None else min(value, QUICK_CAPS[kind])

    def apply(self, params: "P") -> "P":
        """A copy of ``params`` (nested ones included) with every ``scale``-tagged field scaled."""
        if not self.quick:
            return params
        changes = {}
        for f in dataclasses.fields(params):
            value = getattr(params, f.name)
            if isinstance(value, Params):
                changes[f.name] = self.apply(value)
            elif "scale" in f.metadata and (value is None or isinstance(value, int)):
                changes[f.name] = self.scale(f.metadata["scale"], value)
        return dataclasses.replace(params, **changes)


P = typing.TypeVar("P", bound=Params)


@dataclass
class StepResult:
    """What an op returns: the model to save, an optional artifact it wrote, and its metrics.

    ``artifact`` is a file inside the step directory (e.g. ``model.int8.onnx``); the runner records its
    sha256 and, since an artifact-making step must be the last one, evaluates and times it as the result.
    ``metrics`` land in the step's ``metrics.json`` beside the parameters the step really used.
    """

    model: Any
    artifact: str | None = None
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclass
class StepContext:
    """What a step function may use besides the model: data, device, teacher, its own directory.

    ``scratch(name)`` gives a file in the step directory that the runner deletes once the step is done
    (e.g. the resumable training checkpoint); ``resume`` says an interrupted attempt left files there.
    ``log(record)`` appends a line to the step's ``log.jsonl`` at once, so a long step can be followed.
    """

    step_dir: Path
    data: str
    device: str = "cpu"
    budget: Budget = dataclasses.field(default_factory=Budget)
    resume: bool = False
    progress: bool = True
    lineage: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    teacher_loader: Callable[[], Any] | None = None
    scratch_files: list[Path] = dataclasses.field(default_factory=list)

    @property
    def quick(self) -> bool:
        """True under ``--quick`` (the smoke-test budget)."""
        return self.budget.quick

    def teacher(self) -> Any:
        """The frozen teacher model (loaded on first use)."""
        if self.teacher_loader is None:
            raise HGCError("this run has no teacher")
        return self.teacher_loader()

    def scratch(self, name: str) -> Path:
        """A file in the step directory that only matters until the step is done."""
        path = self.step_dir / name
        self.scratch_files.append(path)
        return path

    def log(self, record: dict[str, Any]) -> None:
        """Append one JSON line to the step's ``log.jsonl``."""
        with open(self.step_dir / "log.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=str) + "\n")


StepFn = Callable[[Any, Any, StepContext], StepResult]
ArtifactRule = Callable[[Any], bool]


@dataclass(frozen=True)
class StepSpec:
    """A registered op: name, parameter dataclass, function, one-line description, artifact rule.

    ``makes_artifact(params)`` says whether the op, so configured, writes an artifact (recipe validation
    then requires it to be the last step, since later steps work on the model and would drop the file).
    """

    name: str
    params: type[Params]
    fn: StepFn
    doc: str
    makes_artifact: ArtifactRule = lambda params: False


_REGISTRY: dict[str, StepSpec] = {}


def register_step(name: str, params: type[Params], artifact: bool | ArtifactRule = False
                  ) -> Callable[[StepFn], StepFn]:
    """Decorator: make ``fn(model, params, ctx) -> StepResult`` the recipe op ``name`` with schema ``params``.

    ``artifact``: True (or a predicate on the params) when the op writes an artifact file. Technique
    modules call this at import time, so adding an op never touches the runner or the CLI.
    """
    if not (isinstance(params, type) and issubclass(params, Params)):
        raise TypeError(f"register_step({name!r}): params must subclass compress.steps.Params")
    rule: ArtifactRule = artifact if callable(artifact) else (lambda _params, on=bool(artifact): on)

    def add(fn: StepFn) -> StepFn:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"recipe op {name!r} is registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        _REGISTRY[name] = StepSpec(name=name, params=params, fn=fn, doc=doc, makes_artifact=rule)
        return fn

    return add


def load_techniques() -> None:
    """Import every module of ``compress.techniques`` so their ops register themselves.

    Discovery by package listing keeps techniques independent: no central list to edit, no cross-imports.
    """
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")


def registered_ops() -> dict[str, StepSpec]:
    """All registered ops by name, sorted (technique modules imported first).

    The single source for validation, the runner and ``hgc recipe ops``.
    """
    load_techniques()
    return dict(sorted(_REGISTRY.items()))


def get_op(name: str, where: str) -> StepSpec:
    """The op ``name``, or an error at ``where`` listing the known ops (with a did-you-mean).

    Unknown ops are caught while validating, before any step runs.
    """
    ops = registered_ops()
    if name not in ops:
        close = difflib.get_close_matches(name, list(ops), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise HGCError(f"{where}: unknown op {name!r}{hint}; known ops: {', '.join(ops) or 'none'}")
    return ops[name]


def describe(params: type[Params], prefix: str = "") -> list[dict[str, Any]]:
    """Each parameter of a schema (nested ones as ``distill.alpha``): name, type, default, constraint, doc.

    ``hgc recipe ops`` prints these rows.
    """
    hints = typing.get_type_hints(params)
    rows = []
    for f in dataclasses.fields(params):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        low, high, choices = f.metadata.get("low"), f.metadata.get("high"), f.metadata.get("choices")
        if choices:
            constraint = f"one of {', '.join(map(str, choices))}"
        elif low is not None and high is not None:
            constraint = f"in [{low:g}, {high:g}]"
        elif low is not None or high is not None:
            constraint = f"≥ {low:g}" if low is not None else f"≤ {high:g}"
        else:
            constraint = ""
        rows.append({"name": prefix + f.name, "type": _type_name(hints[f.name]),
                     "default": "(required)" if default is dataclasses.MISSING else default,
                     "constraint": constraint, "doc": f.metadata.get("doc", "") + _quick_note(f.metadata)})
        nested = _nested(hints[f.name])
        if nested is not None:
            rows.extend(describe(nested, prefix=f"{prefix}{f.name}."))
    return rows


def _quick_note(meta: Any) -> str:
    """What ``--quick`` does to a field (from its ``scale`` tag), for ``hgc recipe ops``."""
    kind = meta.get("scale")
    if kind is None:
        return ""
    if kind == "steps":
        return f" (×{QUICK_STEP_FRACTION:g}, min {QUICK_MIN_STEPS}, under --quick)"
    return f" (≤ {QUICK_CAPS[kind]} under --quick)"
