"""The model config: a plain, JSON-able dataclass that fully describes a hourglass network.

A checkpoint stores only this config and the tensors; the model is rebuilt from the config alone,
including per-layer widths left behind by structured pruning (``widths``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from compress.errors import HGCError

UPSAMPLE_MODES = ("nearest", "deconv")
SKIP_FUSIONS = ("add", "concat")
NORMS = ("batch", "group")


@dataclass
class InputSpec:
    """What the network expects as input, so preprocessing travels with the model.

    The network takes float RGB in [0, 1], NCHW; ``mean``/``std`` normalisation runs inside the model.
    """

    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def is_identity(self) -> bool:
        """True when no normalisation is needed (mean 0, std 1): the net then skips the InputNorm layer."""
        return tuple(self.mean) == (0.0, 0.0, 0.0) and tuple(self.std) == (1.0, 1.0, 1.0)


@dataclass
class HourglassConfig:
    """Every architectural choice of a stacked hourglass.

    Defaults (2 stacks, 256 features, depth 4, Newell bottleneck) reproduce pytorch-pose ``hg_s2_b1``.
    ``features`` is the width of the residual stream; bottleneck blocks run at half of it inside.
    ``depth`` is one int or one per stack. ``widths`` maps module names to the channel sizes they
    have after structured pruning ([out, in] for convolutions, [channels] or [channels, groups] for norms).
    """

    stacks: int = 2
    features: int = 256
    depth: int | list[int] = 4
    modules: int = 1
    block: str = "bottleneck"
    block_args: dict[str, Any] = field(default_factory=dict)
    upsample: str = "nearest"
    skip: str = "add"
    norm: str = "batch"
    stem: str = "pytorch-pose"
    input_size: int = 256
    joints: int = 16
    intermediate: bool = True
    input: InputSpec = field(default_factory=InputSpec)
    widths: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.input, dict):
            self.input = _from_dict(InputSpec, self.input, "config.input")
        try:
            self.input.mean = tuple(float(v) for v in self.input.mean)
            self.input.std = tuple(float(v) for v in self.input.std)
        except (TypeError, ValueError):
            raise HGCError(f"config.input: mean and std must be numbers, got {self.input.mean!r}, "
                           f"{self.input.std!r}") from None
        self.validate()

    def validate(self) -> None:
        """Reject impossible configs with one line naming the field."""
        for name in ("stacks", "features", "modules", "input_size", "joints"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise HGCError(f"config.{name}: expected a positive integer, got {value!r}")
        depths = self.depths()
        if any(not isinstance(d, int) or d < 1 for d in depths):
            raise HGCError(f"config.depth: expected positive integers, got {self.depth!r}")
        if len(depths) != self.stacks:
            raise HGCError(f"config.depth: {len(depths)} depths given for {self.stacks} stacks")
        if self.features % 4:
            raise HGCError(f"config.features: must be a multiple of 4 (the stem starts at features/4), "
                           f"got {self.features}")
        if self.input_size % (4 * 2 ** max(depths)):
            raise HGCError(
                f"config.input_size: {self.input_size} is not divisible by 4·2^depth = {4 * 2 ** max(depths)}"
            )
        for name, allowed in (("upsample", UPSAMPLE_MODES), ("skip", SKIP_FUSIONS), ("norm", NORMS)):
            if getattr(self, name) not in allowed:
                raise HGCError(f"config.{name}: {getattr(self, name)!r} is not one of {', '.join(allowed)}")
        if len(self.input.mean) != 3 or len(self.input.std) != 3 or any(s <= 0 for s in self.input.std):
            raise HGCError("config.input: mean and std need 3 values each, std > 0")

    def depths(self) -> list[int]:
        """Depth of each stack's hourglass."""
        return list(self.depth) if isinstance(self.depth, (list, tuple)) else [self.depth] * self.stacks

    @property
    def heatmap_size(self) -> int:
        """Side of the output heatmaps: the network works at a quarter of the input resolution."""
        return self.input_size // 4

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (what checkpoints and ONNX metadata store)."""
        data = dataclasses.asdict(self)
        data["input"] = {"mean": list(self.input.mean), "std": list(self.input.std)}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HourglassConfig":
        """Build a config from JSON data; unknown keys are an error, not silently dropped."""
        return _from_dict(cls, data, "config")

    def replace(self, **changes: Any) -> "HourglassConfig":
        """A validated copy with some fields changed."""
        return HourglassConfig.from_dict({**self.to_dict(), **changes})


def _from_dict(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise HGCError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise HGCError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise HGCError(f"{where}: {exc}") from None
