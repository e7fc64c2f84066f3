"""Run any model the toolkit makes behind one interface: images in, last-stack heatmaps out.

A predictor is a callable float32 N×3×H×W → N×J×h×w with an ``input_size`` attribute, so evaluation
and timing do not care whether a PyTorch checkpoint or an exported file runs underneath.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from compress.errors import HGCError
from compress.nets import checkpoint


class TorchPredictor:
    """A PyTorch hourglass on CPU or CUDA."""

    def __init__(self, model: torch.nn.Module, device: str = "cpu") -> None:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise HGCError(f"--device {device}: CUDA is not available on this machine (available: cpu)")
        self.model = model.to(device).eval()
        self.device = device
        self.input_size = model.config.input_size

    def __call__(self, images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = self.model(torch.from_numpy(images).to(self.device))
        return out[:, -1].float().cpu().numpy()


def load_predictor(path: str, device: str = "cpu") -> Any:
    """Open a checkpoint (``.pt``) as a predictor; unknown file kinds are a one-line error."""
    if not os.path.isfile(path):
        raise HGCError(f"{path}: no such model file")
    if path.endswith(".pt"):
        model, _ = checkpoint.load(path)
        return TorchPredictor(model, device)
    raise HGCError(f"{path}: unknown model file type (expected .pt)")
