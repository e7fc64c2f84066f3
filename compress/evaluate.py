"""Run a model over a data source and score it with official-semantics PCKh.

Anything that maps a float32 image batch to heatmaps can be evaluated (a PyTorch module, an ONNX
session wrapped by ``compress.runtime``), so accuracy is measured on the artifact that ships.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from compress.data import transforms as T
from compress.data.crops import eval_dataset, stack_items
from compress.errors import HGCError
from compress.io import check_output
from compress.metrics import PCKhResult, normalized_errors, result_from_errors
from compress.mpii_eval import write_preds_mat
from compress.runtime import TorchPredictor, describe_predictor, load_predictor

Predictor = Callable[[np.ndarray], np.ndarray]


@dataclass
class EvalReport:
    """PCKh result plus the raw predictions in original image coordinates (for preds.mat)."""

    result: PCKhResult
    preds: np.ndarray  # (N, 16, 2)
    indices: np.ndarray  # (N,) sample indices in the source
    data: str
    skipped: int = 0  # records left out by skip_bad (unreadable or missing images)
    records: np.ndarray | None = None  # (N,) record index in the annotation file of each prediction
    total_records: int = 0  # records the source's annotation file holds (kept or skipped)
    ran: dict[str, Any] = field(default_factory=dict)  # runtime, threads, precision hint, executed precision
    errors: np.ndarray | None = None  # (N, 16) distance / head size per prediction (NaN counts as wrong)
    counted: np.ndarray | None = None  # (N, 16) which joints are annotated (the ones PCKh counts)


def flip_averaged(predict: Predictor, input_width: int) -> Predictor:
    """Test-time flip: average the heatmaps of the image and of its mirror (mapped back, joints swapped)."""

    def predict_flip(images: np.ndarray) -> np.ndarray:
        mirrored = predict(np.ascontiguousarray(images[..., ::-1]))
        return 0.5 * (predict(images) + T.flip_heatmaps(mirrored, input_width))

    return predict_flip


def evaluate(model: Any, data: str, *, limit: int | None = None, batch_size: int = 32, flip: bool = False,
             device: str = "cpu", input_size: int | None = None, seed: int = 0, skip_bad: bool = False) -> EvalReport:
    """PCKh of ``model`` (an ``nn.Module`` or a predictor callable) on the first ``limit`` samples of ``data``.

    The input size comes from the model's config unless given (predictors from ONNX files carry theirs).
    A record whose image proves unreadable under ``skip_bad`` is counted once, not replaced by a neighbour.
    """
    if limit is not None and limit < 1:
        raise HGCError(f"--limit: must be ≥ 1, got {limit}")
    if batch_size < 1:
        raise HGCError(f"--batch-size: must be ≥ 1, got {batch_size}")
    if isinstance(model, torch.nn.Module):
        input_size = input_size or model.config.input_size
        predict = TorchPredictor(model, device)
    else:
        input_size = input_size or getattr(model, "input_size")
        predict = model
    if flip:
        predict = flip_averaged(predict, input_size)
    dataset = eval_dataset(data, input_size, seed=seed, skip_bad=skip_bad)
    source = dataset.source
    count = len(dataset) if limit is None else min(limit, len(dataset))
    preds, gts, visible, heads, indices, records = [], [], [], [], [], []
    seen: set[int] = set()
    for start in range(0, count, batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, count))]
        items = [it for it in items if not (it["record"] in seen or seen.add(it["record"]))]
        if not items:
            continue
        batch = stack_items(items, data, start)
        preds.append(batch.points(predict(batch.images)))
        gts.append(batch.joints)
        visible.append(batch.visible)
        heads.append(batch.head_size)
        indices += [it["index"] for it in items]
        records += [it["record"] for it in items]
    if not preds:
        raise HGCError(f"--data {data}: no sample could be evaluated")
    preds, gts, visible, heads = (np.concatenate(a) for a in (preds, gts, visible, heads))
    errors, counted = normalized_errors(preds, gts, visible, heads)
    result = result_from_errors(errors, counted)
    skipped = {s.index for s in getattr(source, "skipped", ())}
    kept = {int(i) for i in getattr(source, "indices", range(len(source)))}
    return EvalReport(result=result, preds=preds, indices=np.asarray(indices), data=data,
                      skipped=len(skipped), records=np.asarray(records), total_records=len(kept | skipped),
                      errors=errors, counted=counted)


def evaluate_file(path: str, data: str, *, limit: int | None = None, flip: bool = False, device: str = "cpu",
                  batch_size: int = 32, skip_bad: bool = False, preds_out: str | None = None,
                  runtime: str | None = None, precision: str | None = None, threads: int | None = None) -> EvalReport:
    """``hgc eval``: load a checkpoint (or an exported model), evaluate it, optionally write preds.mat.

    ``runtime``/``precision``/``threads`` choose how an exported model runs (``load_predictor``); the report's
    ``ran`` records it, the executed precision included (OpenVINO may run fp32 as bf16).

    preds.mat has one row per record of the annotation file, in file order (what the official scripts
    expect); records without a prediction (skipped images) are NaN, which the official scoring counts wrong.
    """
    if preds_out:
        if limit is not None:
            raise HGCError("--preds needs every record: drop --limit")
        check_output(preds_out)
    predictor = load_predictor(path, device=device, runtime=runtime, precision=precision, threads=threads)
    report = evaluate(predictor, data, limit=limit, flip=flip, batch_size=batch_size, skip_bad=skip_bad)
    report.ran = describe_predictor(predictor)
    if preds_out:
        full = np.full((report.total_records, *report.preds.shape[1:]), np.nan)
        full[report.records] = report.preds
        write_preds_mat(preds_out, full)
    return report
