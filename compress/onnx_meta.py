"""The hgc-onnx format: input/output names and the ``hgc.*`` metadata an exported file carries.

A leaf module (nothing from ``compress`` but errors), so the exporter, the runtime, calibration and
the benchmarks read and write the same metadata without importing each other, and without PyTorch.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import onnx

from compress.errors import HGCError, first_line

FORMAT = "hgc-onnx/1"
INPUT_NAME, OUTPUT_NAME = "image", "heatmaps"
GRAPH_DOC = ("hourglass-compress pose network. Input 'image': float32 N x 3 x S x S, RGB in [0, 1], NCHW "
             "(normalisation inside the graph). Output 'heatmaps': float32 N x stacks x joints x S/4 x S/4, "
             "MPII joint order; the last stack is the prediction. Metadata: hgc.* properties (JSON).")


def metadata_props(config: Any, meta: dict[str, Any], lineage: list[dict[str, Any]], opset: int,
                   dynamic_batch: bool, exporter: dict[str, Any]) -> dict[str, str]:
    """The ``metadata_props`` of an export: everything needed to know what the file is and how to feed it.

    ``config`` is the network's ``HourglassConfig``; ``exporter`` names the exporter and its versions
    (recorded in ``hgc.export`` beside the opset).
    """
    size = config.input_size
    input_spec = {"name": INPUT_NAME, "dtype": "float32", "layout": "NCHW", "color": "RGB", "range": [0.0, 1.0],
                  "shape": ["batch" if dynamic_batch else 1, 3, size, size],
                  "mean": list(config.input.mean), "std": list(config.input.std),
                  "normalization": "inside the graph: (image - mean) / std"}
    output_spec = {"name": OUTPUT_NAME, "dtype": "float32", "layout": "N,stacks,joints,H,W",
                   "shape": ["batch" if dynamic_batch else 1, config.stacks, config.joints, size // 4, size // 4],
                   "prediction": "last stack", "joint_order": "MPII"}
    props = {"hgc.format": FORMAT, "hgc.config": config.to_dict(), "hgc.meta": meta, "hgc.lineage": lineage,
             "hgc.input": input_spec, "hgc.output": output_spec,
             "hgc.export": {"opset": opset, "dynamic_batch": dynamic_batch, **exporter}}
    return {key: value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            for key, value in props.items()}


def read_metadata(onnx_path: str | os.PathLike) -> dict[str, Any]:
    """The ``metadata_props`` of an ONNX file, hgc entries decoded from JSON (``hgc.config`` → ``config``).

    Lets any tool recover the config, lineage, meta and input spec of an artifact without PyTorch.
    """
    path = Path(onnx_path)
    if not path.is_file():
        raise HGCError(f"{path}: no such ONNX file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        reason = first_line(exc)
        raise HGCError(f"{path}: not an ONNX file ({reason})") from None
    if not proto.graph.node and not proto.graph.input:
        raise HGCError(f"{path}: not an ONNX file (no graph)")
    result: dict[str, Any] = {}
    for prop in proto.metadata_props:
        if prop.key.startswith("hgc."):
            try:
                result[prop.key[4:]] = json.loads(prop.value) if prop.key != "hgc.format" else prop.value
            except json.JSONDecodeError:
                raise HGCError(f"{path}: metadata {prop.key!r} is not valid JSON") from None
        else:
            result[prop.key] = prop.value
    return result
