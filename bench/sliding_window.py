"""Benchmark sliding-window blending and BraTS metrics on a BraTS-sized volume (CPU, no network).

Compares, in one run:
- the Gaussian importance map built separably (ours) vs ``scipy.ndimage.gaussian_filter`` on an
  impulse (nnU-Net's ``compute_gaussian`` recipe, the baseline);
- sliding-window blending overhead with float32 vs float64 accumulation (predict_fn is a cheap
  per-voxel linear map, so the time is the blending itself);
- HD95 on the bounding box (ours) vs ``medpy.metric.binary.hd95`` on the full array (if installed).

Usage: ``python bench/sliding_window.py [--repeats N]``; prints a table and writes
``bench/results/sliding_window.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from glioedge.data.sliding_window import (
    count_windows,
    gaussian_importance_map,
    sliding_window_predict,
)
from glioedge.metrics import hd95

SHAPE = (240, 240, 155)
PATCH = (128, 128, 128)


def _time(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _nnunet_gaussian() -> np.ndarray:
    impulse = np.zeros(PATCH)
    impulse[tuple(p // 2 for p in PATCH)] = 1
    g = gaussian_filter(impulse, [p / 8 for p in PATCH], 0, mode="constant", cval=0)
    return (g / g.max()).astype(np.float32)


def main() -> None:
    """Run the benchmark, print a table and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    image = rng.standard_normal((2, *SHAPE)).astype(np.float32)
    W = rng.standard_normal((4, 2)).astype(np.float32)

    def linear(x: np.ndarray) -> np.ndarray:
        return np.einsum("kc,bc...->bk...", W, x)

    rows: list[dict[str, object]] = []

    def add(name: str, baseline: str, t_ours: float, t_base: float | None) -> None:
        rows.append(
            {
                "case": name,
                "baseline": baseline,
                "ours_s": t_ours,
                "baseline_s": t_base,
                "speedup": None if t_base is None else t_base / t_ours,
            }
        )

    from glioedge.data.window_geometry import shared_importance_map

    def ours_gaussian() -> np.ndarray:
        shared_importance_map.cache_clear()
        return gaussian_importance_map(PATCH)

    add(
        "gaussian map 128³",
        "scipy gaussian_filter (nnU-Net)",
        _time(ours_gaussian, args.repeats),
        _time(_nnunet_gaussian, args.repeats),
    )
    t32 = _time(lambda: sliding_window_predict(image, linear, PATCH, num_classes=4), args.repeats)
    t64 = _time(
        lambda: sliding_window_predict(image, linear, PATCH, num_classes=4, accumulate_dtype=np.float64),
        args.repeats,
    )
    add(f"blend {count_windows(SHAPE, PATCH)} windows, float32", "same, float64", t32, t64)

    ref = np.zeros(SHAPE, dtype=bool)
    ref[70:150, 80:160, 40:110] = True
    pred = np.zeros(SHAPE, dtype=bool)
    pred[72:152, 78:160, 40:112] = True
    try:
        from medpy.metric.binary import hd95 as medpy_hd95

        t_medpy: float | None = _time(lambda: medpy_hd95(pred, ref, (1.0, 1.0, 1.0)), 1)
    except ImportError:
        t_medpy = None
    add(
        "hd95 240×240×155",
        "medpy hd95 (full array)",
        _time(lambda: hd95(pred, ref, (1.0, 1.0, 1.0)), args.repeats),
        t_medpy,
    )

    header = f"{'case':<32} {'ours (s)':>10} {'baseline (s)':>13} {'speedup':>8}  baseline"
    lines = [header, "-" * len(header)]
    for r in rows:
        base = "n/a" if r["baseline_s"] is None else f"{r['baseline_s']:.3f}"
        speed = "n/a" if r["speedup"] is None else f"{r['speedup']:.1f}×"
        lines.append(f"{r['case']:<32} {r['ours_s']:>10.3f} {base:>13} {speed:>8}  {r['baseline']}")
    print("\n".join(lines))

    out = Path(__file__).parent / "results" / "sliding_window.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"machine": platform.platform(), "processor": platform.processor(), "rows": rows},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
