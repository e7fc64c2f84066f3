"""Model cards: what a shipped checkpoint is, how it was trained, and what it scores — all measured.

``write_model_card`` evaluates the checkpoint itself (so the card's numbers are what ``hgc eval``
prints), reads the training command, seed and history from the checkpoint, and plots the validation
curve, which shows whether training reached a plateau.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from compress.data.skeleton import JOINT_NAMES
from compress.evaluate import evaluate
from compress.errors import HGCError, first_line
from compress.io import atomic_path, check_output, write_text
from compress.measure import count_macs, count_params, file_sizes
from compress.measure.machine import machine_info
from compress.nets import checkpoint
from compress.train import state_path, training_record


def training_summary(meta: dict[str, Any], history: list[dict[str, float]]) -> dict[str, Any]:
    """Wall time and validation curve (from the checkpoint, else its training history) and the last-20 % gain."""
    if not meta.get("val_curve"):
        meta = {**meta, **training_record(history, int(meta.get("train", {}).get("batch_size", 1)))}
    curve = [(int(s), float(p)) for s, p in meta.get("val_curve", [])]
    gain = None
    if len(curve) >= 2:
        before = [p for s, p in curve if s <= 0.8 * curve[-1][0]]
        gain = curve[-1][1] - before[-1] if before else None
    return {"wall_s": float(meta.get("wall_s", 0.0)), "curve": curve, "last20_gain": gain}


def plot_curve(curve: list[tuple[int, float]], path: str | os.PathLike, title: str) -> None:
    """Validation PCKh against training step, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=110)
    ax.plot([s for s, _ in curve], [p for _, p in curve], marker="o")
    ax.axvline(0.8 * curve[-1][0], color="grey", linestyle=":", label="last 20 %")
    ax.set(xlabel="training step", ylabel="val PCKh@0.5 (Mean)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def write_model_card(model_path: str, out: str, *, command: str, data: str = "synthetic:val",
                     curve_png: str | None = None) -> dict[str, Any]:
    """Evaluate ``model_path`` on ``data`` and write the card ``out`` (markdown); returns the card's numbers."""
    for path in (out, curve_png):
        if path:
            check_output(path)
    model, info = checkpoint.load(model_path)
    report = evaluate(model, data)
    table = report.result.table()
    train_cfg = info.meta.get("train", {})
    summary = training_summary(info.meta, json.loads(_history_json(model_path)))
    name = Path(model_path).stem
    if curve_png and summary["curve"]:
        plot_curve(summary["curve"], curve_png, f"{name}: validation curve")
    machine = machine_info()
    numbers = {
        "model": name, "data": data, "samples": int(len(report.indices)), **report.result.to_dict(),
        "params": count_params(model), "macs": count_macs(model, info.config.input_size),
        "bytes": file_sizes(model_path), "wall_s": round(summary["wall_s"], 1), "last20_gain": summary["last20_gain"],
        "seed": info.meta.get("seed"), "steps": info.meta.get("step"),
    }
    lines = [
        f"# {name}", "",
        f"Stacked hourglass trained on `{info.meta.get('dataset', 'unknown data')}` by this command "
        "(from the repository root):", "",
        "```bash", command, "```", "",
        "## Architecture", "",
        "```json", json.dumps(info.config.to_dict()), "```", "",
        f"{numbers['params']:,} parameters, {numbers['macs'] / 1e9:.3f} GMACs at "
        f"{info.config.input_size}×{info.config.input_size} (conv, deconv and linear multiply-accumulates), "
        f"{numbers['bytes']['bytes']:,} bytes on disk ({numbers['bytes']['lzma_bytes']:,} after lzma).", "",
        "## Training", "",
        f"Seed {numbers['seed']}, {numbers['steps']} steps of batch {train_cfg.get('batch_size')}, "
        f"{train_cfg.get('optimizer')} lr {train_cfg.get('lr')} decayed ×{train_cfg.get('lr_gamma')} at "
        f"{train_cfg.get('lr_milestones')} of the run. Wall time {summary['wall_s'] / 60:.1f} min on "
        f"{machine['cpu']} ({machine['cores']} cores, {machine['isa']}), torch {machine['torch']}.", "",
    ]
    if summary["curve"]:
        gain = summary["last20_gain"]
        lines += [f"Validation Mean PCKh@0.5 on the first {train_cfg.get('val_samples')} val samples during training; "
                  f"the last 20 % of steps changed it by {gain:+.2f}." if gain is not None else "", ""]
        if curve_png:
            lines += [f"![validation curve]({os.path.relpath(curve_png, Path(out).parent)})", ""]
    lines += [
        f"## Accuracy on `{data}` ({numbers['samples']} samples, no flip)", "",
        "Reproduce: `hgc eval " + model_path + f" --data {data}`", "",
        "```", report.result.format_table(), "```", "",
        "| joint | PCKh@0.5 | PCKh@0.1 |", "|---|---|---|",
        *[f"| {n} | {a:.2f} | {b:.2f} |" for n, a, b in
          zip(JOINT_NAMES, report.result.per_joint, report.result.per_joint_01)], "",
        "<!-- numbers (machine-readable, written by compress.modelcard) -->",
        "```json", json.dumps(numbers, indent=1, default=float), "```", "",
    ]
    write_text(out, "\n".join(lines))
    return {**numbers, "table": table}


def _history_json(model_path: str) -> str:
    """The training history saved beside a checkpoint (``.state``), or an empty list if there is none."""
    path = state_path(model_path)
    if not os.path.isfile(path):
        return "[]"
    try:
        return torch.load(path, map_location="cpu", weights_only=True).get("history_json", "[]")
    except Exception as exc:  # a damaged state file only costs the card its curve
        raise HGCError(f"{path}: unreadable training state ({first_line(exc)}); move it away to write the card "
                       "from the checkpoint alone") from None
