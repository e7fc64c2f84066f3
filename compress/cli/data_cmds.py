"""``hgc data preview`` and ``hgc bench-data``: look at the benchmark before trusting it, and time it."""
from __future__ import annotations

import argparse

from compress.cli.common import command
from compress.data.dataset import open_source
from compress.data.preview import save_preview
from compress.data.throughput import measure_throughput


@command("data", "look at a data set: `hgc data preview --data synthetic:val -n 32 -o grid.png`")
def _data(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    preview = sub.add_parser("preview", help="grid of samples with the skeleton drawn")
    preview.add_argument("--data", default="synthetic:val")
    preview.add_argument("-n", type=int, default=32, help="number of samples")
    preview.add_argument("--cols", type=int, default=8)
    preview.add_argument("--size", type=int, default=128, help="synthetic image size")
    preview.add_argument("--seed", type=int, default=0)
    preview.add_argument("--cell", type=int, default=192, help="tile size in pixels")
    preview.add_argument("-o", "--out", required=True, help="PNG path")

    def run(a: argparse.Namespace) -> int:
        path = save_preview(open_source(a.data, size=a.size, seed=a.seed), a.n, a.out, cols=a.cols, cell=a.cell)
        print(f"wrote {path} ({a.n} samples of {a.data})")
        return 0

    preview.set_defaults(run=run)


@command("bench-data", "throughput of the data generator, the training pipeline and evaluation")
def _bench_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="synthetic:train")
    p.add_argument("-n", "--samples", type=int, default=200)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--model", default=None, help="also time evaluation of this model")

    def run(a: argparse.Namespace) -> int:
        result = measure_throughput(a.data, samples=a.samples, size=a.size, model_path=a.model)
        print("\n".join(result.lines()))
        return 0

    p.set_defaults(run=run)
