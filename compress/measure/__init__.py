"""Measurement: parameters and MACs, bytes on disk (raw, gzip, lzma), latency, machine peak.

``cost`` counts parameters and MACs (its docstring says exactly what is counted), ``sizes`` the bytes,
``latency`` times predictors (single or paired A B A B …), ``peak`` the runtime's matrix-product peak,
``machine`` records what ran, and ``bench`` turns all of it into the tables of ``hgc inspect``/``hgc bench``.
"""
from compress.measure.cost import count_macs, count_params, onnx_macs, onnx_params
from compress.measure.sizes import file_sizes

__all__ = ["count_macs", "count_params", "onnx_macs", "onnx_params", "file_sizes"]
