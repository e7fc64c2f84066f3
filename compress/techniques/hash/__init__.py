"""Hashed weights (the ``hash`` op, HashedNets): each conv's weights drawn from K shared buckets by a hash.

Modules: ``op`` (the recipe op and the bucket-tied layers) and ``config`` (``HashParams``); the hash
functions live in the core (``compress.packed.hashing``) because the packed format rebuilds with them.
"""
from compress.techniques.hash.config import HashParams
from compress.techniques.hash.op import hash_weights

__all__ = ["HashParams", "hash_weights"]
