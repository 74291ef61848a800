"""Tests of glioedge.metrics: Dice/HD95 conventions, hand-derived values, medpy agreement."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from glioedge.errors import InputError
from glioedge.metrics import (
    HD95_EMPTY,
    dice,
    evaluate_case,
    hd95,
    summarise,
    surface_distances,
)

SHAPE = (40, 36, 32)


def _cube(lo: tuple[int, int, int], size: int, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[tuple(slice(a, a + size) for a in lo)] = True
    return m


def _blob(rng: np.random.Generator, shape: tuple[int, ...], threshold: float) -> np.ndarray:
    """Random smooth blob(s): thresholded Gaussian-filtered noise."""
    field = gaussian_filter(rng.standard_normal(shape), sigma=3.0)
    return field > threshold * field.std()


def _brute_force_hd95(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...]) -> float:
    """Independent HD95: explicit 6-neighbour surface test and all-pairs distances."""

    def surface(m: np.ndarray) -> np.ndarray:
        padded = np.pad(m, 1)
        interior = m.copy()
        for axis in range(m.ndim):
            for shift in (-1, 1):
                interior &= np.roll(padded, shift, axis=axis)[1:-1, 1:-1, 1:-1]
        return np.argwhere(m & ~interior) * np.asarray(spacing)

    sa, sb = surface(a), surface(b)
    d = np.sqrt(((sa[:, None, :] - sb[None, :, :]) ** 2).sum(-1))
    return float(np.percentile(np.concatenate((d.min(1), d.min(0))), 95))


# ----------------------------------------------------------------------------- Dice


def test_dice_of_shifted_cubes_is_exact() -> None:
    # 10³ cubes shifted by 3 along i: overlap 7·10·10 = 700 voxels -> 2·700 / 2000.
    a = _cube((10, 10, 10), 10)
    b = _cube((13, 10, 10), 10)
    assert dice(a, b) == pytest.approx(0.7, abs=1e-12)
    assert dice(a, a) == 1.0
    assert dice(a, _cube((25, 10, 10), 10)) == 0.0


def test_dice_nested_cubes() -> None:
    # 4³ inside 8³: 2·64 / (64 + 512)
    assert dice(_cube((12, 12, 12), 4), _cube((10, 10, 10), 8)) == pytest.approx(128 / 576)


def test_empty_conventions() -> None:
    empty = np.zeros(SHAPE, dtype=bool)
    full = _cube((5, 5, 5), 4)
    assert dice(empty, empty) == 1.0
    assert hd95(empty, empty, (1.0, 1.0, 1.0)) == 0.0
    for p, r in ((empty, full), (full, empty)):
        assert dice(p, r) == 0.0
        assert hd95(p, r, (1.0, 1.0, 1.0)) == HD95_EMPTY
    assert abs(HD95_EMPTY - np.sqrt(240**2 + 240**2 + 155**2)) < 0.01


def test_shape_and_spacing_errors() -> None:
    a = _cube((5, 5, 5), 4)
    with pytest.raises(InputError, match="shape"):
        dice(a, a[:-1])
    with pytest.raises(InputError, match="spacing"):
        hd95(a, a, (1.0, 1.0))
    with pytest.raises(InputError, match="positive"):
        hd95(a, a, (1.0, 0.0, 1.0))
    with pytest.raises(InputError, match="non-empty"):
        surface_distances(a, np.zeros_like(a), (1.0, 1.0, 1.0))


# ----------------------------------------------------------------------------- HD95


def test_hd95_single_voxels_and_plates() -> None:
    # One voxel vs one voxel 3 along i, 2 mm along i: every distance is 6 mm.
    a = _cube((10, 10, 10), 1)
    b = _cube((13, 10, 10), 1)
    assert hd95(a, b, (2.0, 1.0, 1.0)) == pytest.approx(6.0, abs=1e-12)
    # Two parallel 1-voxel-thick plates 3 apart along i: all surface distances are 3 voxels.
    p = np.zeros(SHAPE, dtype=bool)
    q = np.zeros(SHAPE, dtype=bool)
    p[10, 5:20, 5:20] = True
    q[13, 5:20, 5:20] = True
    assert hd95(p, q, (2.0, 1.0, 1.0)) == pytest.approx(6.0, abs=1e-12)
    assert hd95(p, q, (0.5, 1.0, 1.0)) == pytest.approx(1.5, abs=1e-12)


def test_hd95_shifted_cube_hand_derived() -> None:
    """10³ cube vs the same cube shifted 3 voxels along i.

    Directed distances a→b over a's 488 surface voxels (b→a is the mirror image, same multiset),
    with spacing s_i along the shift and 1 mm across:
    - side-ring voxels (36 per layer) at layers i = 3..9 lie on b's surface: 0;
    - side-ring voxels at layers 0, 1, 2: 3, 2, 1 voxels along i → 3·s_i, 2·s_i, 1·s_i;
    - the 64 inner voxels of face i = 0: 3·s_i (b's face i = 3 straight ahead);
    - the 64 inner voxels of face i = 9 (inside b): min(distance to b's sides, 3·s_i) ≤ 3·s_i.
    No value exceeds 3·s_i, and at least 2·(36 + 64) = 200 of the 976 values equal it: more than
    the top 5 % (the 95th percentile interpolates between sorted values 926 and 927), so
    HD95 = 3·s_i exactly (6 mm for s_i = 2 mm).
    """
    a = _cube((10, 10, 10), 10)
    b = _cube((13, 10, 10), 10)
    d_ab, d_ba = surface_distances(a, b, (2.0, 1.0, 1.0))
    assert d_ab.size == d_ba.size == 10**3 - 8**3
    assert np.count_nonzero(d_ab == 0) == 7 * 36
    assert np.count_nonzero(d_ab == 6.0) == 36 + 64
    assert hd95(a, b, (2.0, 1.0, 1.0)) == pytest.approx(6.0, abs=1e-12)
    assert hd95(a, b, (1.0, 1.0, 1.0)) == pytest.approx(3.0, abs=1e-12)


def test_anisotropic_spacing_matters() -> None:
    a = _cube((10, 10, 10), 10)
    b = _cube((13, 10, 10), 10)  # shifted along i
    assert hd95(a, b, (2.0, 1.0, 1.0)) == pytest.approx(6.0)
    assert hd95(a, b, (1.0, 1.0, 2.0)) == pytest.approx(3.0)  # spacing along k is irrelevant here
    c = _cube((10, 10, 13), 10)  # shifted along k
    assert hd95(a, c, (1.0, 1.0, 2.0)) == pytest.approx(6.0)
    assert hd95(a, c, (2.0, 1.0, 1.0)) == pytest.approx(3.0)


def test_hd95_is_symmetric_and_zero_for_identical() -> None:
    rng = np.random.default_rng(7)
    a = _blob(rng, SHAPE, 1.0)
    b = _blob(rng, SHAPE, 1.0)
    sp = (0.9, 1.1, 2.5)
    assert hd95(a, a, sp) == 0.0
    assert hd95(a, b, sp) == pytest.approx(hd95(b, a, sp), abs=1e-12)


def test_masks_touching_the_array_border() -> None:
    """The bounding-box crop must see the same zero border as the full array."""
    a = np.zeros((12, 10, 8), dtype=bool)
    b = np.zeros_like(a)
    a[:, :5, :] = True  # touches five faces of the array
    b[3:, 2:, :6] = True
    sp = (1.0, 1.5, 2.0)
    assert hd95(a, b, sp) == pytest.approx(_brute_force_hd95(a, b, sp), abs=1e-9)
    full = np.ones((6, 6, 6), dtype=bool)
    assert hd95(full, full, (1.0, 1.0, 1.0)) == 0.0


@pytest.mark.parametrize("seed", range(4))
def test_hd95_against_brute_force(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    shape = (24, 22, 20)
    a = _blob(rng, shape, 1.2)
    b = _blob(rng, shape, 1.2)
    assert a.any()
    assert b.any()
    sp = tuple(float(s) for s in rng.uniform(0.5, 3.0, size=3))
    assert hd95(a, b, sp) == pytest.approx(_brute_force_hd95(a, b, sp), abs=1e-9)


def test_agreement_with_medpy() -> None:
    medpy_binary = pytest.importorskip(
        "medpy.metric.binary", reason="medpy (the BraTS reference implementation) not installed"
    )
    rng = np.random.default_rng(2024)
    shape = (48, 44, 36)
    for case in range(10):
        a = _blob(rng, shape, rng.uniform(0.5, 1.5))
        b = _blob(rng, shape, rng.uniform(0.5, 1.5))
        if case == 0:  # overlapping masks that reach the array border
            b = a.copy()
            b[:, :3, :] = True
        sp = tuple(float(s) for s in rng.uniform(0.6, 3.0, size=3))
        assert a.any()
        assert b.any()
        assert dice(a, b) == pytest.approx(medpy_binary.dc(a, b), abs=1e-6)
        assert hd95(a, b, sp) == pytest.approx(medpy_binary.hd95(a, b, voxelspacing=sp), abs=1e-3)


# ----------------------------------------------------------------------------- per case


def _label_case() -> tuple[np.ndarray, np.ndarray]:
    ref = np.zeros(SHAPE, dtype=np.uint8)
    ref[8:30, 8:28, 6:26] = 2  # ED
    ref[12:26, 12:24, 10:22] = 3  # ET rim
    ref[15:23, 15:21, 13:19] = 1  # NCR core
    pred = np.zeros_like(ref)
    pred[9:31, 8:28, 6:26] = 2
    pred[12:26, 12:24, 10:22] = 3
    pred[15:23, 15:21, 13:19] = 1
    return pred, ref


def test_evaluate_case_regions() -> None:
    pred, ref = _label_case()
    sp = (1.0, 1.0, 1.0)
    res = evaluate_case(pred, ref, sp)
    assert list(res) == ["WT", "TC", "ET"]
    for region, classes in (("WT", (1, 2, 3)), ("TC", (1, 3)), ("ET", (3,))):
        p, r = np.isin(pred, classes), np.isin(ref, classes)
        assert res[region] == {"dice": dice(p, r), "hd95": hd95(p, r, sp)}
        assert all(isinstance(v, float) for v in res[region].values())
    assert res["TC"]["dice"] == 1.0
    assert res["ET"]["hd95"] == 0.0
    # WT shifted by one voxel along i (22 long): overlap 21/22.
    assert res["WT"]["dice"] == pytest.approx(21 / 22)


def test_evaluate_case_missing_et() -> None:
    pred, ref = _label_case()
    ref_no_et = np.where(ref == 3, 1, ref).astype(np.uint8)
    pred_no_et = np.where(pred == 3, 1, pred).astype(np.uint8)
    res = evaluate_case(pred, ref_no_et, (1.0, 1.0, 1.0))
    assert res["ET"] == {"dice": 0.0, "hd95": HD95_EMPTY}
    res = evaluate_case(pred_no_et, ref_no_et, (1.0, 1.0, 1.0))
    assert res["ET"] == {"dice": 1.0, "hd95": 0.0}
    with pytest.raises(InputError, match="shape"):
        evaluate_case(pred, ref[:-1], (1.0, 1.0, 1.0))


def test_summarise() -> None:
    cases = [
        {"WT": {"dice": d, "hd95": h}, "ET": {"dice": d / 2, "hd95": 2 * h}}
        for d, h in itertools.product((0.5, 0.9), (2.0, 4.0))
    ]
    s = summarise(cases)
    assert s["WT"]["dice"]["mean"] == pytest.approx(0.7)
    assert s["WT"]["dice"]["std"] == pytest.approx(0.2)
    assert s["WT"]["hd95"]["median"] == pytest.approx(3.0)
    assert s["ET"]["hd95"]["max"] == pytest.approx(8.0)
    assert s["ET"]["dice"]["min"] == pytest.approx(0.25)
    assert s["WT"]["dice"]["n"] == 4
    with pytest.raises(InputError, match="at least one"):
        summarise([])
    with pytest.raises(InputError, match="case result 1"):
        summarise([cases[0], {"WT": {"dice": 1.0}}])
