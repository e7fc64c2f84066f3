"""Tie a conv's weights to a codebook: ``weight = table[index]``, trained through the codebook alone.

The table is the layer's free centroids, preceded by a fixed 0 when the layer had exact zeros (a
sparsified model's zeros stay zero and take no gradient). Autograd of the gather gives each centroid
the sum of its members' gradients, so every member moves together and the weights stay tied. Per
channel, each output channel has its own row of centroids.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from compress.nets.shared import share_weight
from compress.techniques.cluster import kmeans


def _table(module: nn.Module) -> torch.Tensor:
    book = module.cluster_codebook
    if module.cluster_zero.item():
        book = torch.cat([book.new_zeros(*book.shape[:-1], 1), book], dim=-1)
    return book


def _make(module: nn.Module) -> torch.Tensor:
    table, index = _table(module), module.cluster_index
    if table.dim() == 1:
        return table[index]
    return torch.gather(table, 1, index.view(index.shape[0], -1)).view(index.shape)


def _load(module: nn.Module, weight: torch.Tensor) -> None:
    """Set the codebook from a tied weight (resume); a weight that is not tied to the index is refused."""
    index, zero = module.cluster_index, int(module.cluster_zero.item())
    book = module.cluster_codebook
    with torch.no_grad():
        rows = index.view(book.shape[0], -1) if book.dim() == 2 else index.view(1, -1)
        values = weight.to(book.device, book.dtype).view(rows.shape)
        flat_book = book.view(rows.shape[0], -1)
        for row, (idx, val) in enumerate(zip(rows, values)):
            members = idx >= zero
            flat_book[row].scatter_(0, idx[members] - zero, val[members])
        if not torch.equal(_make(module), weight.to(book.device, book.dtype)):
            raise ValueError("the weights are not tied to this layer's clustering")


def cluster_weight(weight: np.ndarray, k: int, init: str, iterations: int, per_channel: bool, seed: int
                   ) -> tuple[np.ndarray, np.ndarray, bool]:
    """(free centroids, index into [0?, centroids…], has-zero) of a weight: rows for ``per_channel``.

    Exact zeros keep index 0 and value 0 (the fixed centroid) and the other weights share k − 1 centroids.
    """
    rows = weight.reshape(weight.shape[0], -1) if per_channel else weight.reshape(1, -1)
    zero = bool(np.any(rows == 0))
    free = k - 1 if zero else k
    books, index = [], np.zeros(rows.shape, dtype=np.int64)
    for r, row in enumerate(rows):
        nonzero = row != 0
        centroids, labels = (kmeans.cluster(row[nonzero], free, init, iterations, seed)
                             if nonzero.any() else (np.zeros(1, np.float32), np.zeros(0, np.int64)))
        books.append(centroids)
        index[r, nonzero] = labels + int(zero)
    width = max(len(b) for b in books)
    table = np.stack([np.pad(b, (0, width - len(b)), mode="edge") for b in books])  # unused pad entries
    return (table if per_channel else table[0]), index.reshape(weight.shape), zero


def tie(module: nn.Module, codebook: np.ndarray, index: np.ndarray, zero: bool) -> None:
    """Make ``module.weight`` the codebook lookup (see the module docstring); undo with ``unshare_weight``."""
    weight = module.weight
    share_weight(module, {"cluster_codebook": torch.as_tensor(codebook, dtype=weight.dtype, device=weight.device)},
                 {"cluster_index": torch.as_tensor(index, device=weight.device),
                  "cluster_zero": torch.tensor(zero, device=weight.device)}, _make, _load)
