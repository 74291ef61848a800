"""Paired differences over seeds: mean, 95 % intervals and a verdict that follows them.

Used by the benches that compare an arm with a baseline trained on the same seeds
(bench/kd_ablation.py). Two intervals are given for the mean of the per-seed differences:

* a paired bootstrap: the seeds are resampled with replacement (a fixed generator seed, so the
  interval is reproducible), percentile interval of the resampled means;
* the paired t interval: mean ± t(n−1) · sd / √n.

With as few as 8 seeds the percentile bootstrap is known to be too narrow (it uses the plug-in sd
and normal-like quantiles: at n = 8 it is about 0.77× the t interval's width), while the t interval
assumes roughly normal differences. The verdict therefore needs **both** to agree: "better" when
both intervals lie above 0, "worse" when both lie below 0, "no difference shown" otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

BETTER, WORSE, NO_DIFFERENCE = "better", "worse", "no difference shown"
TOO_FEW = "too few seeds"


def paired_interval(
    deltas: Sequence[float], *, level: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> dict[str, Any]:
    """Mean, sd and the bootstrap and t intervals of per-seed differences, with the verdict."""
    d = np.asarray(deltas, dtype=float)
    if d.ndim != 1 or not np.all(np.isfinite(d)):
        raise ValueError(f"paired differences must be a flat list of finite numbers, got {deltas!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    n = d.size
    out: dict[str, Any] = {
        "n": n, "mean": float(d.mean()) if n else math.nan,
        "sd": float(d.std(ddof=1)) if n > 1 else 0.0, "level": level,
        "bootstrap_resamples": resamples, "bootstrap_seed": seed,
        "ci_bootstrap": None, "ci_t": None, "verdict": TOO_FEW,
    }
    if n < 2:
        return out
    if resamples < 1:
        raise ValueError(f"bootstrap resamples must be ≥ 1, got {resamples}")
    alpha = 1.0 - level
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    out["ci_bootstrap"] = [float(lo), float(hi)]
    half = float(stats.t.ppf(1 - alpha / 2, n - 1)) * out["sd"] / math.sqrt(n)
    out["ci_t"] = [out["mean"] - half, out["mean"] + half]
    out["verdict"] = verdict(out["ci_bootstrap"], out["ci_t"])
    return out


def verdict(*intervals: Sequence[float]) -> str:
    """"better" if every interval is above 0, "worse" if every one is below, else no difference."""
    if all(lo > 0 for lo, _ in intervals):
        return BETTER
    if all(hi < 0 for _, hi in intervals):
        return WORSE
    return NO_DIFFERENCE


def format_interval(s: dict[str, Any], digits: int = 3) -> str:
    """'+0.012 [−0.004, +0.030] (t [−0.006, +0.031])', or the verdict when there is no interval."""
    if s["ci_bootstrap"] is None:
        return f"{s['mean']:+.{digits}f} ({s['verdict']})"
    (blo, bhi), (tlo, thi) = s["ci_bootstrap"], s["ci_t"]
    return (f"{s['mean']:+.{digits}f} [{blo:+.{digits}f}, {bhi:+.{digits}f}] "
            f"(t [{tlo:+.{digits}f}, {thi:+.{digits}f}])")
