"""``hgc export``, ``hgc inspect`` and ``hgc bench``: thin wrappers over ``compress.export`` / ``compress.measure``."""
from __future__ import annotations

import argparse
import json

from compress.cli.common import command
from compress.errors import HGCError
from compress.export import DEFAULT_OPSET, export_onnx
from compress.export_ir import export_openvino
from compress.measure.bench import bench_models, check_outputs, format_table, inspect_models, write_frame
from compress.measure.latency import SETTLE_CALLS
from compress.measure.ops import op_profiles

BENCH_COLUMNS = ("model", "runtime", "provider", "threads", "streams", "executed", "batch", "graph_batch", "p50_ms",
                 "p90_ms", "p99_ms", "gmacs", "gmac_s", "reference", "ratio_median", "ratio_q25", "ratio_q75",
                 "peak_gmac_s", "efficiency")
INSPECT_COLUMNS = ("model", "kind", "precision", "input", "params", "gmacs", "bytes", "gzip_bytes", "lzma_bytes",
                   "gzip_ratio", "lzma_ratio")


@command("export", "export a checkpoint to ONNX or OpenVINO IR, checked against PyTorch on benchmark images")
def _export(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="checkpoint .pt or packed .hgz")
    p.add_argument("-o", "--out", required=True, help="output .onnx path (.xml for --format openvino)")
    p.add_argument("--format", default="onnx", choices=["onnx", "openvino"],
                   help="onnx, or openvino: IR .xml + .bin (needs the openvino extra)")
    p.add_argument("--no-compress-weights", action="store_true",
                   help="openvino: keep fp32 weights in the .bin (default: fp16-compressed)")
    p.add_argument("--dynamic-batch", action="store_true", help="symbolic batch dimension (default: batch 1)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (≥ 17; default 18, the exporter's own)")
    p.add_argument("--atol", type=float, default=None,
                   help="max |runtime − PyTorch| allowed (default 1e-4; 5e-3 for fp16-compressed IR weights)")
    p.add_argument("--data", default="synthetic:val", help="where the parity-check images come from")
    p.add_argument("--parity-images", type=int, default=8)
    p.add_argument("--eval", type=int, default=None, metavar="N",
                   help="also score the exported file on N samples of --data and store its PCKh in the metadata")

    def run(a: argparse.Namespace) -> int:
        if a.format == "openvino":
            if a.eval:
                raise HGCError("--eval: applies to --format onnx; score an IR with `hgc eval model.xml`")
            result = export_openvino(a.model, a.out, compress_weights=not a.no_compress_weights,
                                     dynamic_batch=a.dynamic_batch, opset=a.opset or DEFAULT_OPSET, atol=a.atol,
                                     data=a.data, parity_images=a.parity_images)
            print(f"wrote {result.path} + .bin ({result.bytes:,} bytes, weights "
                  f"{result.metadata['export']['weights']}); parity: max |OpenVINO - torch| = "
                  f"{result.max_abs_diff:.2e} on {result.parity_images} images ({result.seconds:.1f} s)")
            return 0
        if a.no_compress_weights:
            raise HGCError("--no-compress-weights: applies to --format openvino")
        result = export_onnx(a.model, a.out, dynamic_batch=a.dynamic_batch, opset=a.opset or DEFAULT_OPSET,
                             atol=1e-4 if a.atol is None else a.atol, data=a.data, parity_images=a.parity_images,
                             eval_limit=a.eval)
        print(f"wrote {result.path} ({result.bytes:,} bytes, opset {result.opset}, "
              f"batch {'dynamic' if result.dynamic_batch else 1}); parity: max |ORT - torch| = "
              f"{result.max_abs_diff:.2e} on {result.parity_images} images ({result.seconds:.1f} s)")
        if "accuracy" in result.metadata:
            acc = result.metadata["accuracy"]
            print(f"PCKh@0.5 of the exported file: {acc['pckh']:.2f} on {acc['samples']} samples of {acc['data']}")
        return 0

    p.set_defaults(run=run)


@command("inspect", "parameters, MACs, bytes (raw/gzip/lzma), config and metadata of model files")
def _inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="+", help=".pt checkpoints, packed .hgz and/or .onnx files")
    p.add_argument("--csv", default=None, help="also write the table as CSV")
    p.add_argument("--json", default=None, help="also write table and details as JSON")

    def run(a: argparse.Namespace) -> int:
        check_outputs(a.csv, a.json)
        table, details = inspect_models(a.models)
        print(format_table(table, INSPECT_COLUMNS))
        for item in details:
            print(f"\n{item['model']}")
            for key, value in item.items():
                if key != "model" and value not in (None, "", {}):
                    print(f"  {key}: {value if isinstance(value, str) else json.dumps(value, default=str)}")
        write_frame(table, a.csv, a.json, extra={"details": details})
        return 0

    p.set_defaults(run=run)


@command("bench", "latency (p50/p90/p99) of model files; --pair ratios, --peak machine peak and efficiency")
def _bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="*",
                   help=".pt checkpoints, .onnx files and/or OpenVINO IR .xml (none with --peak: peak only)")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    p.add_argument("--runs", type=int, default=50, help="timed runs per model and batch")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: all available cores)")
    p.add_argument("--device", default="cpu", help="cpu | cuda[:N]")
    p.add_argument("--provider", default=None,
                   help="onnxruntime provider for .onnx files: cpu, cuda, tensorrt or a full provider name")
    p.add_argument("--compile", action="store_true", help="run checkpoints through torch.compile")
    p.add_argument("--runtime", nargs="+", default=[None], metavar="RUNTIME",
                   help="onnxruntime | openvino | torch; several: every model on each (default: by file type)")
    p.add_argument("--precision", default=None,
                   help="openvino's INFERENCE_PRECISION_HINT: fp32 | bf16 | fp16 (default: the artifact's, "
                        "else the plugin's own)")
    p.add_argument("--pair", action="store_true",
                   help="alternate the models (× runtimes) A B A B … and report per-pair ratios to the first")
    p.add_argument("--settle", type=int, default=SETTLE_CALLS,
                   help=f"with --pair: untimed calls of a model right before each of its timed ones (default "
                        f"{SETTLE_CALLS}: warm after the others ran)")
    p.add_argument("--peak", action="store_true", help="measure the runtime's fp32/int8 peak and efficiencies")
    p.add_argument("--csv", default=None)
    p.add_argument("--json", default=None)

    def run(a: argparse.Namespace) -> int:
        check_outputs(a.csv, a.json)
        result = bench_models(a.models, batches=a.batch, runs=a.runs, warmup=a.warmup, threads=a.threads,
                              device=a.device, provider=a.provider, pair=a.pair, peak=a.peak, compile=a.compile,
                              runtimes=a.runtime, precision=a.precision, settle=a.settle)
        m = result.machine
        ov = f", openvino {m['openvino']} (CPU: {m['openvino_capabilities']})" if "openvino_capabilities" in m else ""
        print(f"machine: {m['cpu']} ({m['cores']} cores; {m['isa'] or 'no listed ISA flags'}; {m['deciding']}); "
              f"gpu: {m['gpu']}; torch {m['torch']}, onnxruntime {m['onnxruntime']}{ov}; threads {m['threads']}")
        if not result.peaks.empty:
            print("\npeak (matrix product, best of runs):")
            print(format_table(result.peaks))
        if not result.table.empty:
            print()
            print(format_table(result.table, BENCH_COLUMNS))
        main = result.table if not result.table.empty else result.peaks
        write_frame(main, a.csv, a.json, extra={"machine": m, "peaks": result.peaks})
        return 0

    p.set_defaults(run=run)


@command("profile", "onnxruntime time per operator type of ONNX files, round-robin (where pruning's speed goes)")
def _profile(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="+", help=".onnx files; ratios are against the first")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, default=20, help="profiled runs of each file")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads")
    p.add_argument("--csv", default=None)
    p.add_argument("--json", default=None)

    def run(a: argparse.Namespace) -> int:
        check_outputs(a.csv, a.json)
        table = op_profiles(a.models, batch=a.batch, runs=a.runs, warmup=a.warmup, threads=a.threads)
        print(format_table(table))
        write_frame(table, a.csv, a.json)
        return 0

    p.set_defaults(run=run)
