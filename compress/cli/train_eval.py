"""``hgc train``, ``hgc eval``, ``hgc compare``, ``hgc card`` and ``hgc ship``: thin wrappers over train, evaluate,
compare, modelcard and ship."""
from __future__ import annotations

import argparse
import json

from compress.cli.common import command
from compress.compare import compare_files
from compress.evaluate import evaluate_file
from compress.modelcard import write_model_card
from compress.nets.config import HourglassConfig
from compress.ship import ship_run
from compress.train import TrainConfig, train_new


def _model_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model (a new HourglassConfig)")
    g.add_argument("--stacks", type=int, default=2)
    g.add_argument("--features", type=int, default=128)
    g.add_argument("--depth", type=int, nargs="+", default=[4], help="one depth, or one per stack")
    g.add_argument("--modules", type=int, default=1, help="residual modules per level")
    g.add_argument("--block", default="bottleneck")
    g.add_argument("--upsample", default="nearest", choices=["nearest", "deconv"])
    g.add_argument("--skip", default="add", choices=["add", "concat"])
    g.add_argument("--norm", default="batch", choices=["batch", "group"])
    g.add_argument("--input-size", type=int, default=128)
    g.add_argument("--no-intermediate", action="store_true", help="supervise the last stack only")


@command("train", "train a new hourglass (also under torchrun for DDP)")
def _train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="synthetic", help="synthetic | mpii:ANNOT[:IMAGES]")
    p.add_argument("--val-data", default=None, help="validation spec (default: synthetic:val for synthetic)")
    p.add_argument("--out", required=True, help="checkpoint path (.pt)")
    _model_flags(p)
    t = p.add_argument_group("training")
    t.add_argument("--steps", type=int, default=1000)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--lr", type=float, default=2.5e-4)
    t.add_argument("--optimizer", default="adam", choices=["adam", "rmsprop"])
    t.add_argument("--lr-milestones", type=float, nargs="*", default=[0.75, 0.9], help="fractions of the run")
    t.add_argument("--sigma", type=float, default=1.0, help="heatmap Gaussian sigma (heatmap pixels)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--workers", type=int, default=0, help="data-loading worker processes")
    t.add_argument("--val-every", type=int, default=0)
    t.add_argument("--val-samples", type=int, default=500)
    t.add_argument("--checkpoint-every", type=int, default=0)
    t.add_argument("--device", default="cpu")
    t.add_argument("--resume", action="store_true", help="continue from --out's saved state")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--skip-bad", action="store_true", help="skip (and count) unreadable images")

    def run(a: argparse.Namespace) -> int:
        config = HourglassConfig(
            stacks=a.stacks, features=a.features, depth=a.depth[0] if len(a.depth) == 1 else a.depth,
            modules=a.modules, block=a.block, upsample=a.upsample, skip=a.skip, norm=a.norm,
            input_size=a.input_size, intermediate=not a.no_intermediate)
        cfg = TrainConfig(steps=a.steps, batch_size=a.batch_size, lr=a.lr, optimizer=a.optimizer,
                          lr_milestones=a.lr_milestones, sigma=a.sigma, seed=a.seed, workers=a.workers,
                          val_every=a.val_every, val_samples=a.val_samples, checkpoint_every=a.checkpoint_every,
                          device=a.device)
        result = train_new(config, a.data, cfg, a.out, resume=a.resume, val_data=a.val_data,
                           progress=not a.no_progress, skip_bad=a.skip_bad)
        last = result.history[-1] if result.history else {}
        print(f"wrote {result.path} (step {result.step}, loss {last.get('loss', float('nan')):.3e})")
        return 0

    p.set_defaults(run=run)


@command("eval", "PCKh table of a model on a data split")
def _eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="checkpoint .pt (or exported model)")
    p.add_argument("--data", default="synthetic:val")
    p.add_argument("--limit", type=int, default=None, help="first N samples only")
    p.add_argument("--flip", action="store_true", help="test-time flip averaging")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--skip-bad", action="store_true", help="skip (and count) unreadable images")
    p.add_argument("--preds", default=None, help="also write predictions as an MPII preds.mat")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--runtime", default=None,
                   help="onnxruntime | openvino | torch (default: by file type; an IR .xml runs in openvino)")
    p.add_argument("--precision", default=None,
                   help="openvino's INFERENCE_PRECISION_HINT: fp32 | bf16 | fp16 "
                        "(default: the artifact's, else the plugin's own)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the runtime's own)")

    def run(a: argparse.Namespace) -> int:
        report = evaluate_file(a.model, a.data, limit=a.limit, flip=a.flip, device=a.device,
                               batch_size=a.batch_size, skip_bad=a.skip_bad, preds_out=a.preds,
                               runtime=a.runtime, precision=a.precision, threads=a.threads)
        if a.json:
            print(json.dumps({"model": a.model, "data": a.data, "samples": len(report.indices),
                              "skipped": report.skipped, "ran": report.ran, **report.result.to_dict()}, indent=2))
        else:
            skipped = f", {report.skipped} skipped as unreadable" if report.skipped else ""
            executed = f", executed {report.ran['executed']}" if "executed" in report.ran else ""
            print(f"{a.model} on {a.data} ({len(report.indices)} samples{skipped}; "
                  f"{report.ran.get('runtime')}{executed})")
            print(report.result.format_table())
        return 0

    p.set_defaults(run=run)


@command("compare", "is model B more accurate than model A? PCKh of both on the same images, paired bootstrap")
def _compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", metavar="A", help="checkpoint .pt or exported model")
    p.add_argument("b", metavar="B", help="checkpoint .pt or exported model (same input size as A)")
    p.add_argument("--data", default="synthetic:val")
    p.add_argument("--limit", type=int, default=None, help="first N samples only")
    p.add_argument("--flip", action="store_true", help="test-time flip averaging (as a recipe's evaluate.flip)")
    p.add_argument("--threshold", type=float, default=0.5, help="PCKh threshold (head-size fraction)")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap draws of the images")
    p.add_argument("--confidence", type=float, default=0.95, help="of the interval of B − A")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runtime", default=None, help="onnxruntime | openvino | torch (default: by file type)")

    def run(a: argparse.Namespace) -> int:
        print(compare_files(a.a, a.b, data=a.data, limit=a.limit, threshold=a.threshold, resamples=a.resamples,
                            confidence=a.confidence, seed=a.seed, runtime=a.runtime, flip=a.flip).format())
        return 0

    p.set_defaults(run=run)


@command("card", "evaluate a trained checkpoint and write its model card (markdown + validation curve)")
def _card(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="checkpoint .pt")
    p.add_argument("-o", "--out", required=True, help="card path, e.g. models/hg2-128.md")
    p.add_argument("--command", required=True, dest="train_command", help="the command that trained it")
    p.add_argument("--data", default="synthetic:val")
    p.add_argument("--curve", default=None, help="PNG path for the validation curve")

    def run(a: argparse.Namespace) -> int:
        numbers = write_model_card(a.model, a.out, command=a.train_command, data=a.data, curve_png=a.curve)
        print(f"wrote {a.out}: Mean PCKh@0.5 {numbers['table']['Mean']:.2f}, Mean@0.1 {numbers['Mean@0.1']:.2f}")
        return 0

    p.set_defaults(run=run)


@command("ship", "copy a finished run's model into models/ with a card measured on the copy (accuracy, side-by-side "
                 "speed against the base)")
def _ship(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN", help="a finished run directory, e.g. runs/pruning/prune-50")
    p.add_argument("-o", "--out", required=True,
                   help="e.g. models/hg2-128-prune50.pt (.pt: the last step's checkpoint; .onnx/.hgz/.xml: the "
                        "run's evaluated artifact); the card goes beside it as .md")
    p.add_argument("--rounds", type=int, default=50, help="side-by-side timing rounds against the base")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads while timing")
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N samples only")
    p.add_argument("--no-timing", dest="timing", action="store_false", help="accuracy and size only")
    p.add_argument("--reference", default=None,
                   help="checkpoint to size and time against (default: the run's base; name the original model "
                        "when the run started from a derived one)")

    def run(a: argparse.Namespace) -> int:
        result = ship_run(a.run_dir, a.out, rounds=a.rounds, threads=a.threads, limit=a.limit, timing=a.timing,
                          reference=a.reference)
        speed = "".join(f", {row['speedup']:.2f}× faster in {row['runtime']}" for row in result.speed)
        print(f"wrote {result.path} ({result.bytes:,} bytes) and {result.card}: PCKh@0.5 {result.pckh:.2f}{speed}")
        return 0

    p.set_defaults(run=run)
