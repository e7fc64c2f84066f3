"""``hgc pack`` and ``hgc unpack``: thin wrappers over ``compress.packed.files``."""
from __future__ import annotations

import argparse

import pandas as pd

from compress.cli.common import command
from compress.measure.bench import format_table
from compress.packed import CODER_CHOICES, DEFAULT_CODER, DEFAULT_FLOATS, FLOATS
from compress.packed.files import pack_file, unpack_file


@command("pack", "write a checkpoint as a packed .hgz (codebooks, sparse positions, hashed buckets, entropy coding)")
def _pack(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="checkpoint .pt")
    p.add_argument("-o", "--out", required=True, help="output .hgz path")
    p.add_argument("--coder", default=DEFAULT_CODER, choices=CODER_CHOICES, help="entropy coder of the symbol streams")
    p.add_argument("--compare", action="store_true", help="also print bytes and decode time of every coder")
    p.add_argument("--floats", default=DEFAULT_FLOATS, choices=FLOATS,
                   help="fp16: store every float as float16 (the file holds the rounded model); exact: as it is")
    p.add_argument("--no-fold-norms", dest="fold_norms", action="store_false",
                   help="keep BatchNorm statistics instead of folding them into scale and shift")

    def run(a: argparse.Namespace) -> int:
        result = pack_file(a.model, a.out, coder=a.coder, compare=a.compare, floats=a.floats, fold_norms=a.fold_norms)
        r = result.report
        kinds = ", ".join(f"{k}: {n}" for k, n in sorted(r.kinds.items()))
        print(f"wrote {r.path} ({r.bytes:,} bytes, {r.bits_per_weight:.2f} bits/weight, "
              f"{r.fp32_bytes / r.bytes:.1f}x smaller than its fp32 tensors; coder {r.coder}; tensors {kinds})")
        c = r.compact
        print(f"floats {c['floats']}: {c['norms_folded']} BatchNorms folded, {c['tensors_rounded']} tensors rounded "
              f"(largest change {c['max_relative_change']:.1e} of its tensor's peak); hgc eval the .hgz for its PCKh")
        if result.coders:
            print(format_table(pd.DataFrame(result.coders)))
        return 0

    p.set_defaults(run=run)


@command("unpack", "unpack a .hgz into a checkpoint (.pt, identical tensors) or an fp32 ONNX file")
def _unpack(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="packed .hgz")
    p.add_argument("-o", "--out", required=True, help="output .pt or .onnx path")
    p.add_argument("--data", default="synthetic:val", help="ONNX only: where the parity-check images come from")

    def run(a: argparse.Namespace) -> int:
        result = unpack_file(a.model, a.out, data=a.data)
        print(f"wrote {result.path} ({result.bytes:,} bytes, {result.kind})")
        return 0

    p.set_defaults(run=run)
