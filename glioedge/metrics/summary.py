"""Aggregation over cases: the training summary, and descriptive statistics with bootstrap intervals."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from glioedge.errors import InputError

__all__ = ["describe", "summarise"]


def summarise(
    case_results: Sequence[Mapping[str, Mapping[str, float]]],
) -> dict[str, dict[str, dict[str, float]]]:
    """Aggregate per-case results (``{region: {metric: value}}``) over cases.

    Returns:
        ``{region: {metric: {"mean", "std", "median", "min", "max", "n"}}}``; ``std`` is the
        population standard deviation (ddof 0); ``n`` the number of cases (as a float, so the
        result is uniformly JSON-serialisable numbers).

    Raises:
        InputError: ``case_results`` is empty or the cases disagree on regions or metrics.
    """
    if not case_results:
        raise InputError("summarise needs at least one case result, got none")
    first = case_results[0]
    layout = {region: tuple(metrics) for region, metrics in first.items()}
    for index, case in enumerate(case_results):
        case_layout = {region: tuple(metrics) for region, metrics in case.items()}
        if case_layout != layout:
            raise InputError(f"case result {index} has regions/metrics {case_layout}, expected {layout}")
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for region, metrics in layout.items():
        summary[region] = {}
        for metric in metrics:
            values = np.array([float(c[region][metric]) for c in case_results], dtype=np.float64)
            summary[region][metric] = {
                "mean": float(values.mean()),
                "std": float(values.std()),
                "median": float(np.median(values)),
                "min": float(values.min()),
                "max": float(values.max()),
                "n": float(values.size),
            }
    return summary


def describe(values: Sequence[float], *, n_boot: int = 2000, seed: int = 0) -> dict[str, float | int]:
    """Mean, median, quartiles and a 95 % percentile-bootstrap interval of the mean.

    Only finite values enter the statistics; ``n_nan`` and ``n_inf`` count the others (an
    undefined metric, or the official convention's ``inf``), so nothing is dropped silently.
    The bootstrap is seeded: the same values give the same interval.

    Returns:
        ``n``, ``n_nan``, ``n_inf``, ``mean``, ``std`` (ddof 1; NaN below two values), ``median``,
        ``q1``, ``q3``, ``iqr``, ``ci95_low``, ``ci95_high`` (NaN where no finite value exists).
    """
    arr = np.asarray([float(v) for v in values], dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    out: dict[str, float | int] = {"n": int(finite.size), "n_nan": int(np.isnan(arr).sum()),
                                   "n_inf": int(np.isinf(arr).sum())}
    if finite.size == 0:
        return out | dict.fromkeys(("mean", "std", "median", "q1", "q3", "iqr", "ci95_low", "ci95_high"),
                                   math.nan)
    q1, median, q3 = (float(x) for x in np.percentile(finite, [25, 50, 75]))
    rng = np.random.default_rng(seed)
    means = finite[rng.integers(0, finite.size, size=(n_boot, finite.size))].mean(axis=1)
    low, high = (float(x) for x in np.percentile(means, [2.5, 97.5]))
    return out | {
        "mean": float(finite.mean()),
        "std": float(finite.std(ddof=1)) if finite.size > 1 else math.nan,
        "median": median, "q1": q1, "q3": q3, "iqr": q3 - q1,
        "ci95_low": low, "ci95_high": high,
    }
