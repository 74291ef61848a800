"""Hand-derived values of glioedge.metrics: overlap counts, volumes, lesion matching, statistics."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest

from glioedge.evaluation.report import bland_altman
from glioedge.metrics import HD95_EMPTY, describe, match_lesions, region_metrics


def _box(shape: tuple[int, ...], *slices: slice) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[slices] = True
    return m


def test_sensitivity_specificity_and_volumes_are_exact() -> None:
    # 20×20×20 array; reference 4×4×4 = 64 voxels, prediction the same cube shifted by one voxel
    # along i: 48 shared voxels, 16 missed, 16 spurious; 8000 − 64 − 16 = 7920 true negatives.
    ref = _box((20, 20, 20), slice(5, 9), slice(5, 9), slice(5, 9))
    pred = _box((20, 20, 20), slice(6, 10), slice(5, 9), slice(5, 9))
    m = region_metrics(pred, ref, (0.5, 1.0, 2.0))
    assert m.sensitivity == pytest.approx(48 / 64)
    assert m.specificity == pytest.approx(7920 / (7920 + 16))
    assert m.dice == pytest.approx(2 * 48 / 128)
    assert (m.voxels_pred, m.voxels_ref) == (64, 64)
    assert m.volume_ref_ml == pytest.approx(64 * 1.0 / 1000) and m.volume_diff_ml == 0.0
    assert m.volume_rel_diff == 0.0
    assert m.hd95 == pytest.approx(0.5)  # the shift is one 0.5 mm voxel
    assert (m.lesion_tp, m.lesion_fp, m.lesion_fn) == (1, 0, 0)


def test_a_split_lesion_is_one_match_and_one_false_positive() -> None:
    ref = _box((30, 10, 10), slice(2, 22), slice(2, 8), slice(2, 8))
    pred = ref.copy()
    pred[10:12] = False  # two predicted pieces: 8 and 10 slices long
    match = match_lesions(pred, ref, (1, 1, 1), 1.0)
    assert (match.n_ref, match.n_pred, match.tp, match.fp, match.fn) == (1, 2, 1, 1, 0)
    # The larger piece wins the one-to-one matching: Dice 2·10·36 / (20·36 + 10·36).
    assert match.lesions[0].dice == pytest.approx(2 * 10 / 30)
    m = region_metrics(pred, ref, (1, 1, 1))
    assert m.lesion_f1 == pytest.approx(1 / (1 + 0.5))
    assert m.lesion_dice_ranked == pytest.approx((2 * 10 / 30) / 2)  # the FP scores 0
    assert m.lesion_hd95_ranked == pytest.approx((m.lesion_hd95 + HD95_EMPTY) / 2)


def test_lesions_touching_only_at_a_corner_are_one_lesion() -> None:
    ref = np.zeros((6, 6, 6), bool)
    ref[1, 1, 1] = ref[2, 2, 2] = True
    assert match_lesions(ref, ref, (1, 1, 1), 1.0).n_ref == 1


def test_a_missed_lesion_and_an_unrelated_one() -> None:
    ref = _box((30, 30, 10), slice(2, 6), slice(2, 6), slice(2, 6))
    pred = _box((30, 30, 10), slice(20, 24), slice(20, 24), slice(2, 6))
    m = region_metrics(pred, ref, (1, 1, 1))
    assert (m.lesion_tp, m.lesion_fp, m.lesion_fn) == (0, 1, 1)
    assert (m.lesion_dice, m.lesion_hd95, m.lesion_f1, m.lesion_precision) == (0.0, HD95_EMPTY, 0.0, 0.0)
    assert math.isnan(m.lesion_dice_std)
    assert m.dice == 0.0 and 20 < m.hd95 < 30  # the real distance between the two


def test_describe_counts_what_it_leaves_out_and_is_reproducible() -> None:
    values = [0.9, 0.8, float("nan"), 0.7, float("inf"), 0.6]
    d = describe(values)
    assert (d["n"], d["n_nan"], d["n_inf"]) == (4, 1, 1)
    assert d["mean"] == pytest.approx(0.75) and d["median"] == pytest.approx(0.75)
    assert d["q1"] == pytest.approx(0.675) and d["iqr"] == pytest.approx(0.15)
    assert 0.6 <= d["ci95_low"] < d["mean"] < d["ci95_high"] <= 0.9
    assert describe(values) == d
    assert math.isnan(describe([float("nan")])["mean"])


def test_bland_altman_limits() -> None:
    ba = bland_altman([11.0, 22.0, 29.0], [10.0, 20.0, 30.0])
    assert ba["bias_ml"] == pytest.approx(2 / 3)
    sd = float(np.std([1.0, 2.0, -1.0], ddof=1))
    assert ba["loa_high_ml"] == pytest.approx(2 / 3 + 1.96 * sd)


def test_glioedge_never_imports_the_agpl_official_package() -> None:
    root = Path(__file__).resolve().parents[2] / "glioedge"
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path}: {n}" for n in names
                          if n.split(".")[0] in ("brats_evaluation", "panoptica")]
    assert offenders == []
