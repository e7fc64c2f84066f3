"""Parameter counts of the registered blocks at the seeds' setting, beside seed 000's table.

The seeds (issue #13) compare residual blocks in a 2-stack, 256-feature, depth-4 hourglass at 256×256
with the default stem; every residual module of the net (stem, hourglasses, per-stack residuals) uses
the block. ``python -m compress.nets.seed_table`` prints the table the README's "Lighter blocks" cites.
Models are built on the ``meta`` device: no weights are allocated, counting takes well under a second.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch

from compress.nets.config import HourglassConfig
from compress.nets.hourglass import StackedHourglass

SEED_SETTING: dict[str, Any] = {"stacks": 2, "features": 256, "depth": 4, "input_size": 256}


@dataclass(frozen=True)
class SeedRow:
    """One variant: our block and arguments, our parameter count, and seed 000's (None: not in it)."""

    name: str
    block: str
    block_args: dict[str, Any] = field(default_factory=dict)
    seed_params: int | None = None
    params: int = 0

    @property
    def gap(self) -> float | None:
        """Relative difference (ours − seed) / seed, or None without a seed count."""
        return None if self.seed_params is None else (self.params - self.seed_params) / self.seed_params


SEED_ROWS: tuple[SeedRow, ...] = (
    SeedRow("baseline", "bottleneck", {}, 6_730_912),
    SeedRow("Multi", "multidilated", {"dilations": [1, 2, 3]}, 3_882_912),
    SeedRow("Multi5", "multidilated", {"dilations": [1, 2, 3, 5]}, 4_420_704),
    SeedRow("Multi7", "multidilated", {"dilations": [1, 2, 3, 5, 7]}, 4_959_264),
    SeedRow("Dice1", "dice", {"units": 1}, 2_670_512),
    SeedRow("Dice2", "dice", {"units": 2}, 3_704_560),
    SeedRow("dws", "dws"),
    SeedRow("hru", "hru"),
    SeedRow("gated", "gated"),
    SeedRow("bottleneck4", "bottleneck4"),
)


def count_parameters(block: str, block_args: dict[str, Any] | None = None, **setting: Any) -> int:
    """Parameters of the seed-setting hourglass (or ``setting`` overrides) built with ``block``."""
    config = HourglassConfig(**{**SEED_SETTING, **setting}, block=block, block_args=dict(block_args or {}))
    with torch.device("meta"):
        model = StackedHourglass(config)
    return sum(p.numel() for p in model.parameters())


def seed_parameter_table() -> list[SeedRow]:
    """Every row of ``SEED_ROWS`` with our parameter count filled in."""
    return [SeedRow(r.name, r.block, r.block_args, r.seed_params, count_parameters(r.block, r.block_args))
            for r in SEED_ROWS]


def format_table(rows: list[SeedRow]) -> str:
    """Markdown table: variant, block + args, our count, seed 000's count, gap."""
    lines = ["| variant | block (block_args) | params (ours) | seed 000 | gap |", "|---|---|---:|---:|---:|"]
    for r in rows:
        args = f" `{json.dumps(r.block_args)}`" if r.block_args else ""
        seed = "–" if r.seed_params is None else f"{r.seed_params:,}"
        gap = "–" if r.gap is None else f"{100 * r.gap:+.2f} %"
        lines.append(f"| {r.name} | `{r.block}`{args} | {r.params:,} | {seed} | {gap} |")
    return "\n".join(lines)


def main() -> None:
    """Print the table (``python -m compress.nets.seed_table``)."""
    print(format_table(seed_parameter_table()))


if __name__ == "__main__":
    main()
