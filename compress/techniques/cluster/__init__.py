"""Weight clustering (the ``cluster`` op): per-layer k-means weight sharing with tied fine-tuning.

Modules: ``op`` (the recipe op), ``config`` (``ClusterParams``), ``kmeans`` (1-D k-means: inits, Lloyd, the
exact optimum) and ``tied`` (codebook-tied layers for training).
"""
from compress.techniques.cluster.config import ClusterParams
from compress.techniques.cluster.kmeans import INITS
from compress.techniques.cluster.op import cluster

__all__ = ["INITS", "ClusterParams", "cluster"]
