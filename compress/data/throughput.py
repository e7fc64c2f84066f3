"""How fast the data side runs: generator samples/s, training-pipeline items/s, evaluation images/s.

Training on 2 CPU cores must not be starved by its own data; these numbers say whether it is.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from compress.data.dataset import PoseDataset, open_source
from compress.evaluate import evaluate
from compress.runtime import load_predictor


@dataclass
class Throughput:
    """Items per second for each stage, measured in one process, one after the other."""

    data: str
    size: int
    samples: int
    generator_per_s: float
    pipeline_per_s: float
    eval_per_s: float | None = None

    def lines(self) -> list[str]:
        """The measurement as printable lines (what ``hgc bench-data`` shows)."""
        out = [f"data {self.data} at {self.size}×{self.size}, {self.samples} samples, 1 process",
               f"  source (decode/generate)      {self.generator_per_s:8.1f} samples/s",
               f"  training pipeline (+crop/aug)  {self.pipeline_per_s:8.1f} items/s"]
        if self.eval_per_s is not None:
            out.append(f"  evaluation (+model forward)   {self.eval_per_s:8.1f} images/s")
        return out


def measure_throughput(data: str = "synthetic:train", samples: int = 200, size: int = 128,
                       model_path: str | None = None, seed: int = 0) -> Throughput:
    """Time ``samples`` draws from the source, the augmenting training pipeline and (optionally) evaluation."""
    source = open_source(data, size=size, seed=seed)
    count = min(samples, len(source))
    start = time.perf_counter()
    for i in range(count):
        source[i]
    generator = count / (time.perf_counter() - start)
    pipeline_set = PoseDataset(source, size, size // 4, train=True, seed=seed)
    start = time.perf_counter()
    for i in range(count):
        pipeline_set[i]
    pipeline = count / (time.perf_counter() - start)
    result = Throughput(data, size, count, generator, pipeline)
    if model_path:
        predictor = load_predictor(model_path)
        spec = data if not data.endswith(":train") else data.replace(":train", ":val")
        start = time.perf_counter()
        report = evaluate(predictor, spec, limit=count)
        result.eval_per_s = len(report.indices) / (time.perf_counter() - start)
        result.size = predictor.input_size
    return result
