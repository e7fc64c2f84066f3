"""Shared fixtures: tiny hourglass configs so every test runs in seconds on 2 CPU cores."""
from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

from compress.nets.config import HourglassConfig

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture
def tiny_config() -> HourglassConfig:
    """1 stack, 16 features, depth 2, 32×32 input: a forward pass takes milliseconds."""
    return HourglassConfig(stacks=1, features=16, depth=2, input_size=32)


@pytest.fixture
def tiny2_config() -> HourglassConfig:
    """2 stacks so merges and intermediate supervision are exercised."""
    return HourglassConfig(stacks=2, features=16, depth=2, input_size=32)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def mpii_dir() -> Path:
    """The real MPII annotation files beside the checkout (../shared/mpii)."""
    path = SHARED / "mpii"
    assert path.is_dir(), f"expected the shared MPII files at {path}"
    return path


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Torch on one thread for the test (and back after): bit-equal reductions across processes, less noise."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def repo_script() -> Callable[[str], ModuleType]:
    """Import a script kept beside a report (``reports/size/size_map.py``) by its path in the repository."""
    def load(relative: str) -> ModuleType:
        path = REPO / relative
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load
