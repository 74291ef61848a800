"""Benchmark glioedge.metrics against the official BraTS package on BraTS-sized cases (CPU).

For each of a few synthetic 240×240×155 1 mm cases with several lesions (BraTS 2023 labels), in
one run: the official package (``brats-evaluation`` 0.0.10 / panoptica 2.1.7, glioma
configuration, from NIfTI files, as its users run it) is the baseline; glioedge's full set in the
official-compatibility mode and in its own conventions, and training validation's compact
Dice+HD95, are timed against it. The official-mode figures are compared with the package's (the
largest absolute difference over every figure is reported).

Usage: ``python bench/metrics.py [--cases N]``; prints a table and writes
``bench/results/metrics.json``. Needs the dev extras (brats-evaluation, nibabel).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import print_table, write_json

from glioedge.metrics import EVAL_REGIONS, OFFICIAL_REGION_NAMES, evaluate_case
from tests.metrics.official import FIELD_TO_OFFICIAL, official_results

SHAPE = (240, 240, 155)


def _case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A lumpy tumour with two satellites, and a prediction that disagrees at the edges."""
    rng = np.random.default_rng(seed)
    grid = np.indices(SHAPE, dtype=np.float32)
    ref = np.zeros(SHAPE, np.uint8)
    pred = np.zeros(SHAPE, np.uint8)
    for centre, radius in (((120, 110, 80), 28), ((70, 160, 60), 9), ((170, 70, 100), 6)):
        c = np.array(centre) + rng.uniform(-5, 5, 3)
        d = np.sqrt(sum((g - x) ** 2 for g, x in zip(grid, c, strict=True)))
        lump = d - 0.25 * radius * gaussian_filter(rng.standard_normal(SHAPE).astype(np.float32), 6) * 8
        for out, shift in ((ref, 0.0), (pred, rng.uniform(-2, 2))):
            out[lump < radius + shift] = 2
            out[lump < 0.6 * radius + shift] = 3
            out[lump < 0.3 * radius + shift] = 1
    pred[(pred == 0) & (ref == 0) & (rng.random(SHAPE) < 2e-6)] = 2  # a few spurious specks
    return pred, ref


def _time(fn, *args, **kwargs) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def main() -> None:
    """Run the benchmark, print a table and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.cases):
            pred, ref = _case(seed)
            t_off, (official, _) = _time(official_results, pred, ref, (1.0, 1.0, 1.0), Path(tmp), f"c{seed}")
            t_gl_off, ours = _time(evaluate_case, pred, ref, (1, 1, 1), EVAL_REGIONS, full=True,
                                   official=True)
            t_gl, _ = _time(evaluate_case, pred, ref, (1, 1, 1), EVAL_REGIONS, full=True)
            t_val, _ = _time(evaluate_case, pred, ref, (1, 1, 1))
            worst = 0.0
            for region, m in ours.items():
                theirs = official[OFFICIAL_REGION_NAMES[region]]
                for field, key in FIELD_TO_OFFICIAL.items():
                    a, b = getattr(m, field), theirs.get(key)
                    b = math.nan if b is None else float(b)
                    if math.isfinite(a) and math.isfinite(b):
                        worst = max(worst, abs(a - b))
                    elif not ((math.isnan(a) and math.isnan(b)) or a == b):
                        worst = math.inf
            n_les = sum(1 for les in ours["WT"].lesions)
            rows.append({"case": seed, "WT lesions": n_les, "official s": t_off,
                         "glioedge official-mode s": t_gl_off, "glioedge s": t_gl,
                         "validation pair s": t_val, "speed-up (official mode)": t_off / t_gl_off,
                         "max |diff|": worst})
    print_table(rows, list(rows[0]))
    write_json("metrics", {"shape": SHAPE, "rows": rows,
                           "note": "the official time includes reading its two NIfTI files; the "
                                   "first case also pays the package's import and YAML parsing"})


if __name__ == "__main__":
    main()
