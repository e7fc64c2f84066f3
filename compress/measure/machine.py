"""What a measurement ran on: CPU model and ISA flags, GPU, library versions.

Latency numbers without the machine beside them cannot be compared, so every timing row carries these.
"""
from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import shutil
import subprocess
from typing import Any

import numpy as np
import onnx
import onnxruntime
import torch

# ISA features that decide CNN throughput (FMA width, int8 dot products, bf16, AMX tiles).
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
             "amx_tile", "amx_int8", "amx_bf16", "amx_fp16", "asimd", "sve")
INT8_DOT = ("amx_int8", "avx512_vnni", "avx_vnni")  # int8 dot-product instructions, best first
BF16_MATH = ("amx_bf16", "avx512_bf16")  # bf16 matrix/dot-product instructions, best first


def available_cores() -> int:
    """CPU cores this process may run on (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict[str, Any]:
    """CPU model name and the ISA flags of interest from /proc/cpuinfo (empty where unreadable)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model") and value.strip():
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {"cpu": model, "isa": " ".join(f for f in ISA_FLAGS if f in flags), "cores": available_cores()}


@functools.lru_cache(maxsize=1)
def gpu_name() -> str | None:
    """Name of GPU 0 (from torch, else nvidia-smi), or None on a CPU-only machine."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    if shutil.which("nvidia-smi"):
        try:
            done = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                  capture_output=True, text=True, timeout=10, check=False)
            return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None
        except (OSError, subprocess.TimeoutExpired):
            return None
    return None


def versions() -> dict[str, str | None]:
    """Versions of the libraries that run the models (openvino: None when the extra is not installed)."""
    return {"python": platform.python_version(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "openvino": _installed("openvino"), "onnx": onnx.__version__, "numpy": np.__version__}


def _installed(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def deciding_features(isa: str) -> str:
    """The ISA features that decide int8 and bf16 speed, in words (the report's machine line).

    int8 convolutions run on VNNI/AMX dot products where present, else on AVX2's multiply-add pairs (about
    a third of VNNI's rate); bf16 needs AVX512-BF16 or AMX-BF16 (without them OpenVINO runs fp32).
    """
    flags = set(isa.split())
    int8 = next((f for f in INT8_DOT if f in flags), None)
    bf16 = next((f for f in BF16_MATH if f in flags), None)
    int8_text = f"int8 on {int8}" if int8 else \
        ("int8 on avx2 (no VNNI/AMX)" if "avx2" in flags else "int8: no x86 int8 dot product")
    bf16_text = f"bf16 on {bf16}" if bf16 else "no bf16 (no avx512_bf16/amx_bf16: fp32 stays fp32)"
    return f"{int8_text}; {bf16_text}"


def machine_info() -> dict[str, Any]:
    """Everything a latency row needs to be comparable: CPU, ISA flags, cores, GPU, library versions."""
    return {**cpu_info(), "gpu": gpu_name(), **versions()}
