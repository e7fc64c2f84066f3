"""The packed model format ``.hgz``: Deep-Compression-style storage that loads back bit for bit.

Modules: ``format`` (container: magic, checksum, version, header), ``codec`` (per-tensor coding:
codebooks, per-channel codebooks, sparse relative indices, hashed buckets, dense floats), ``floats`` (the
bit-exact float block), ``coders`` and ``huffman`` (entropy coders), ``bits`` (fixed-width packing),
``hashing`` (HashedNets hashes), ``model`` (pack / load / compare coders) and ``files`` (``hgc pack`` /
``hgc unpack``). The names below are the public Python entry points of the lower modules; ``files``
(which exports ONNX) is imported on its own.
"""
from compress.packed.compact import FLOATS
from compress.packed.format import SUFFIX, VERSION
from compress.packed.model import (CODER_CHOICES, DEFAULT_CODER, DEFAULT_FLOATS, PackReport, compare_coders,
                                   load_model, pack_model, read_header)

__all__ = ["CODER_CHOICES", "DEFAULT_CODER", "DEFAULT_FLOATS", "FLOATS", "SUFFIX", "VERSION", "PackReport",
           "compare_coders", "load_model", "pack_model", "read_header"]
