"""The paired statistics behind docs/kd_evidence.md's verdicts (bench/paired_stats.py)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import kd_ablation  # noqa: E402
from paired_stats import BETTER, NO_DIFFERENCE, TOO_FEW, WORSE, paired_interval  # noqa: E402

# 8 seeds with a consistent gain of about +0.05 (sd 0.01): both intervals must exclude 0
CLEAR_GAIN = [0.05, 0.06, 0.04, 0.07, 0.05, 0.06, 0.045, 0.04]
# 8 seeds of opposite signs, like the seeds 5 and 6 of issue 20: both intervals must include 0
MIXED = [-0.015, 0.076, -0.03, 0.04, 0.01, -0.02, 0.03, -0.04]


def test_a_consistent_gain_is_better_and_both_intervals_exclude_zero() -> None:
    s = paired_interval(CLEAR_GAIN)
    assert s["n"] == 8 and s["mean"] == pytest.approx(sum(CLEAR_GAIN) / 8)
    for lo, hi in (s["ci_bootstrap"], s["ci_t"]):
        assert 0 < lo < s["mean"] < hi
    assert s["verdict"] == BETTER
    assert paired_interval([-x for x in CLEAR_GAIN])["verdict"] == WORSE


def test_opposite_signs_give_no_difference_and_both_intervals_include_zero() -> None:
    s = paired_interval(MIXED)
    for lo, hi in (s["ci_bootstrap"], s["ci_t"]):
        assert lo < 0 < hi
    assert s["verdict"] == NO_DIFFERENCE


def test_t_interval_is_the_textbook_one() -> None:
    # mean 2.5, sd √(5/3), t(0.975, 3) = 3.182446: 2.5 ± 3.182446 · 1.290994 / 2
    s = paired_interval([1.0, 2.0, 3.0, 4.0])
    assert s["sd"] == pytest.approx(math.sqrt(5 / 3))
    assert s["ci_t"] == pytest.approx([2.5 - 2.054260, 2.5 + 2.054260], abs=1e-5)


def test_bootstrap_is_reproducible_and_depends_on_its_seed() -> None:
    a, b = paired_interval(MIXED, seed=0), paired_interval(MIXED, seed=0)
    assert a["ci_bootstrap"] == b["ci_bootstrap"]
    assert a["bootstrap_resamples"] == 10_000
    assert paired_interval(MIXED, seed=1)["ci_bootstrap"] != a["ci_bootstrap"]
    lo, hi = a["ci_bootstrap"]
    assert min(MIXED) <= lo < hi <= max(MIXED)  # a mean of resampled seeds stays in their range


def test_the_verdict_needs_both_intervals() -> None:
    # mean 0.8 sd, n = 8: the (narrower) percentile bootstrap excludes 0, the t interval does not
    z = [-1.5, -1.0, -0.5, 0.0, 0.2, 0.5, 1.0, 1.3]
    mean = sum(z) / 8
    sd = math.sqrt(sum((x - mean) ** 2 for x in z) / 7)
    s = paired_interval([0.8 + (x - mean) / sd for x in z])
    assert s["ci_bootstrap"][0] > 0 > s["ci_t"][0]  # the case this test is about
    assert s["verdict"] == NO_DIFFERENCE


def test_too_few_seeds_and_bad_input() -> None:
    s = paired_interval([0.1])
    assert s["verdict"] == TOO_FEW and s["ci_t"] is None and s["ci_bootstrap"] is None
    with pytest.raises(ValueError, match="finite"):
        paired_interval([0.1, float("nan")])
    with pytest.raises(ValueError, match="confidence level"):
        paired_interval(CLEAR_GAIN, level=95)


def _run(arm: str, seed: int, dice: dict[str, float]) -> dict:
    metrics = {g: {"dice": {"mean": v}, "hd95": {"mean": 10.0}} for g, v in dice.items()}
    return {"arm": arm, "seed": seed, "seconds": 60.0, "cpu_seconds": 30.0, "curve": [],
            "student": metrics, "teacher": None}


def test_ablation_summary_carries_the_intervals_and_the_verdict_per_region() -> None:
    base = {"WT": 0.80, "TC": 0.70, "ET": 0.75}
    results = {
        "student-only": [_run("student-only", s, base) for s in range(8)],
        # WT always better, TC mixed, ET always worse
        "KD": [_run("KD", s, {"WT": 0.80 + CLEAR_GAIN[s], "TC": 0.70 + MIXED[s],
                              "ET": 0.75 - CLEAR_GAIN[s]}) for s in range(8)],
    }
    rows, paired = kd_ablation.summarise(results)
    verdicts = {g: paired["KD"][g]["verdict"] for g in kd_ablation.REGIONS}
    assert verdicts == {"WT": BETTER, "TC": NO_DIFFERENCE, "ET": WORSE}
    assert paired["KD"]["WT"]["per_seed"] == pytest.approx(CLEAR_GAIN)
    assert paired["KD"]["WT"]["seeds"] == list(range(8))
    md = kd_ablation.markdown(rows, paired)
    assert "| KD | WT | 8 | +0.052 |" in md and "**better**" in md and "**worse**" in md
