"""Benchmark of glioedge.data: case generation, preprocessing, augmentation, loader throughput.

Prints a table and writes ``bench/results/data_loading.json``. The loader with 0 workers is the
baseline that the 2-worker loader is compared with in the same run.

Usage: ``python bench/data_loading.py [--batches 30] [--patch 64]``
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from glioedge.data.augment import AugmentConfig, Augmenter
from glioedge.data.brats import discover_cases
from glioedge.data.dataset import preprocess_cohort
from glioedge.data.modalities import TEACHER_MODALITIES
from glioedge.data.preprocess import PreprocessParams, preprocess
from glioedge.synth.cohort import generate_cohort, make_case

logger = logging.getLogger("bench.data_loading")


def _time(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def _loader_rate(paths: list[Path], patch: int, workers: int, batches: int) -> float:
    from glioedge.data.loader import make_train_loader

    loader = make_train_loader(paths, (patch,) * 3, 2, AugmentConfig(), 1 / 3, 0, workers)
    it = iter(loader)
    for _ in range(max(2, workers * 2)):  # let every worker start
        next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    rate = batches / (time.perf_counter() - t0)
    del it
    return rate


def main() -> None:
    """Run the benchmark and write the JSON results."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batches", type=int, default=30)
    ap.add_argument("--patch", type=int, default=64)
    args = ap.parse_args()
    mods = tuple(m.value for m in TEACHER_MODALITIES)
    rows: dict[str, float] = {}
    rows["make_case default (s)"] = _time(lambda: make_case(0), 5)
    case = make_case(0)
    params = PreprocessParams(mods)
    rows["preprocess default case 2→1 mm, linear (s)"] = _time(
        lambda: preprocess(case.images, case.affine, params, label=case.label), 3)
    bs = PreprocessParams(mods, image_interpolation="bspline3")
    rows["preprocess default case 2→1 mm, bspline3 (s)"] = _time(
        lambda: preprocess(case.images, case.affine, bs, label=case.label), 2)
    aug = Augmenter(AugmentConfig(), np.random.default_rng(0))
    size = aug.input_size((args.patch,) * 3)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, *size)).astype(np.float32)
    y = rng.integers(0, 4, size=size).astype(np.uint8)
    rows[f"augment 4×{args.patch}³ sample, defaults (ms)"] = 1e3 * _time(
        lambda: aug(x, y, (args.patch,) * 3), 40)
    with tempfile.TemporaryDirectory() as tmp:
        generate_cohort(Path(tmp) / "raw", 4, seed=0)
        paths = preprocess_cohort(discover_cases(Path(tmp) / "raw"), params, Path(tmp) / "pre")
        base = _loader_rate(paths, args.patch, 0, args.batches)
        two = _loader_rate(paths, args.patch, 2, args.batches)
    rows["loader B=2, 0 workers (batches/s) [baseline]"] = base
    rows["loader B=2, 2 workers (batches/s)"] = two
    rows["loader speed-up 2 vs 0 workers (×)"] = two / base
    width = max(len(k) for k in rows)
    print(f"{'measure':<{width}}  value")
    for k, v in rows.items():
        print(f"{k:<{width}}  {v:.3f}")
    out = Path(__file__).parent / "results" / "data_loading.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
