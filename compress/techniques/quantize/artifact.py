"""A quantized artifact: its report and its metadata.

``QuantReport`` records settings, which nodes stayed fp32 and why, sizes, scores and the kernels onnxruntime
really runs (counted by ``compress.measure.kernels``); ``write_artifact`` saves a converted graph with the
float file's hgc.* metadata plus ``hgc.quantization``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import onnx

from compress.io import atomic_path
# re-exported: the kernel count moved to compress.measure.kernels; older code imports these names from here
from compress.measure.kernels import NORM_CONV_SUFFIX, KernelCount, count_kernels, optimized_graph, runtime_kernels

__all__ = ["KernelCount", "NORM_CONV_SUFFIX", "QuantReport", "count_kernels", "optimized_graph", "runtime_kernels",
           "write_artifact"]


@dataclass
class QuantReport:
    """What a conversion did: settings, which nodes stayed fp32 and why, kernels onnxruntime really runs."""

    precision: str
    path: str = ""
    calibration: str | None = None
    calibration_images: int = 0
    calibration_data: str = ""
    per_channel: bool | None = None
    activation_type: str | None = None
    weight_type: str | None = None
    excluded: list[dict[str, Any]] = field(default_factory=list)
    kernels: dict[str, Any] = field(default_factory=dict)
    conv_layers: int = 0
    bytes_fp32: int = 0
    bytes: int = 0
    pckh_fp32: float | None = None
    pckh: float | None = None
    heatmap_mse: float | None = None
    max_abs_diff: float | None = None
    scored_images: int = 0
    sensitivity: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def int8_convs(self) -> int:
        """Convolutions that run as int8 kernels in onnxruntime's optimized graph."""
        return int(self.kernels.get("int8_convs", 0))

    @property
    def size_ratio(self) -> float | None:
        """fp32 bytes / these bytes (> 1: smaller)."""
        return round(self.bytes_fp32 / self.bytes, 3) if self.bytes else None

    @property
    def pckh_drop(self) -> float | None:
        """PCKh@0.5 points lost against the float file on the scored crops (None when nothing was scored)."""
        return None if self.pckh is None or self.pckh_fp32 is None else round(self.pckh_fp32 - self.pckh, 4)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the artifact's ``hgc.quantization`` metadata and the step's metrics)."""
        return {**asdict(self), "int8_convs": self.int8_convs, "size_ratio": self.size_ratio,
                "pckh_drop": self.pckh_drop}


def write_artifact(proto: Any, out: str, source: str, report: QuantReport, params: dict[str, Any],
                   parent_sha256: str, io_dtype: str | None = None) -> None:
    """Save ``proto`` atomically at ``out`` with ``source``'s hgc.* metadata, lineage and ``hgc.quantization``.

    The float file's accuracy and parity entries are replaced (they describe the float graph); ``io_dtype`` rewrites the
    dtype of the recorded input/output spec (fp16 files without fp32 I/O).
    """
    src = onnx.load(source, load_external_data=False)
    props = {p.key: p.value for p in src.metadata_props if p.key.startswith("hgc.")}
    lineage = json.loads(props.get("hgc.lineage", "[]"))
    step = {"op": "quantize-onnx", "params": {"precision": report.precision, **params},
            "parent_sha256": parent_sha256}
    props["hgc.lineage"] = json.dumps([*lineage, step], sort_keys=True)
    entry = report.to_dict()
    if entry["sensitivity"]:  # the full per-layer ranking lives in the step log; the file keeps the top 5
        ranking = entry["sensitivity"].pop("ranking", [])
        entry["sensitivity"]["most_sensitive"] = ranking[:5]
    props["hgc.quantization"] = json.dumps(entry, sort_keys=True, default=str)
    props.pop("hgc.accuracy", None)
    props.pop("hgc.parity", None)  # both scored the float graph; the converted one is compared below
    if report.max_abs_diff is not None:
        props["hgc.parity"] = json.dumps({"reference": "the float export of the same network",
                                          "max_abs_diff": report.max_abs_diff, "heatmap_mse": report.heatmap_mse,
                                          "images": report.scored_images,
                                          "runtime": "openvino CPU, bf16 vs fp32 hint" if report.precision == "bf16"
                                          else "onnxruntime CPUExecutionProvider"}, sort_keys=True)
    if io_dtype:
        for key in ("hgc.input", "hgc.output"):
            if key in props:
                props[key] = json.dumps({**json.loads(props[key]), "dtype": io_dtype}, sort_keys=True)
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    proto.doc_string = src.doc_string
    with atomic_path(out) as tmp:
        onnx.save_model(proto, str(tmp))
