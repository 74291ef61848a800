"""A catalogue of small synthetic cases for cross-testing glioedge.metrics with the official package.

Every case is a pair of label maps in a file convention (BraTS 2023: 1 NCR, 2 ED, 3 ET; or BraTS
2021: ET = 4) and a voxel spacing. Volumes are small (about 36×32×24) to keep the tests fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import binary_dilation, binary_erosion, gaussian_filter

SHAPE = (36, 32, 24)


@dataclass(frozen=True)
class Case:
    name: str
    pred: np.ndarray  # file labels
    ref: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    convention: str = "brats2023"


def _ball(center: tuple[float, float, float], radius: float, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    grid = np.indices(shape, dtype=np.float64)
    d2 = sum((g - c) ** 2 for g, c in zip(grid, center, strict=True))
    return d2 <= radius**2


def _tumour(center: tuple[float, float, float], radius: float, shape: tuple[int, ...] = SHAPE,
            et: int = 3) -> np.ndarray:
    """A BraTS-like tumour: edema ball, enhancing shell inside it, necrotic core."""
    out = np.zeros(shape, dtype=np.uint8)
    out[_ball(center, radius, shape)] = 2
    out[_ball(center, 0.65 * radius, shape)] = et
    out[_ball(center, 0.35 * radius, shape)] = 1
    return out


def _combine(*maps: np.ndarray) -> np.ndarray:
    out = np.zeros_like(maps[0])
    for m in maps:
        out[m > 0] = m[m > 0]
    return out


def _random_tumour(seed: int, shape: tuple[int, ...] = SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """A lumpy reference tumour and a prediction that disagrees at the edges and in the core."""
    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.standard_normal(shape), 2.5)
    centre = np.array(shape) / 2 + rng.uniform(-3, 3, 3)
    dist = np.sqrt(sum((g - c) ** 2 for g, c in zip(np.indices(shape), centre, strict=True)))
    score = 9.0 - dist + 25.0 * field
    ref = np.zeros(shape, np.uint8)
    ref[score > 0] = 2
    ref[score > 3] = 3
    ref[score > 6] = 1
    noise = 25.0 * gaussian_filter(rng.standard_normal(shape), 1.5)
    score2 = score + noise * 0.3
    pred = np.zeros(shape, np.uint8)
    pred[score2 > 0.5] = 2
    pred[score2 > 3.5] = 3
    pred[score2 > 5.5] = 1
    return pred, ref


def _empty() -> np.ndarray:
    return np.zeros(SHAPE, np.uint8)


def _builders() -> list[Callable[[], Case]]:
    cases: list[Callable[[], Case]] = []

    def add(fn: Callable[[], Case]) -> Callable[[], Case]:
        cases.append(fn)
        return fn

    @add
    def identical() -> Case:
        t = _tumour((18, 16, 12), 7)
        return Case("identical", t.copy(), t)

    @add
    def shifted_one_voxel() -> Case:
        return Case("shifted_one_voxel", _tumour((19, 16, 12), 7), _tumour((18, 16, 12), 7))

    @add
    def several_lesions_of_different_sizes() -> Case:
        ref = _combine(_tumour((9, 9, 8), 6), _tumour((26, 22, 14), 4), _tumour((28, 7, 18), 2.5))
        pred = _combine(_tumour((10, 9, 8), 5.5), _tumour((26, 23, 15), 4.5), _tumour((14, 26, 6), 2))
        return Case("several_lesions_of_different_sizes", pred, ref)

    @add
    def lesions_touching_the_border() -> Case:
        ref = _combine(_tumour((0, 16, 12), 6), _tumour((35, 31, 23), 5))
        pred = _combine(_tumour((1, 16, 12), 6), _tumour((35, 30, 23), 4))
        return Case("lesions_touching_the_border", pred, ref)

    @add
    def false_positive_only() -> Case:
        return Case("false_positive_only", _tumour((18, 16, 12), 5), _empty())

    @add
    def false_negative_only() -> Case:
        return Case("false_negative_only", _empty(), _tumour((18, 16, 12), 5))

    @add
    def both_empty() -> Case:
        return Case("both_empty", _empty(), _empty())

    @add
    def split_into_two() -> Case:
        ref = _tumour((18, 16, 12), 8)
        pred = ref.copy()
        pred[17:19] = 0  # a cut through the middle: one reference lesion, two predicted
        return Case("split_into_two", pred, ref)

    @add
    def two_merged_into_one() -> Case:
        ref = _combine(_tumour((12, 16, 12), 5), _tumour((24, 16, 12), 5))
        pred = np.where(_ball((18, 16, 12), 9), 2, 0).astype(np.uint8)
        pred[_ball((12, 16, 12), 3)] = 3
        pred[_ball((24, 16, 12), 3)] = 3
        return Case("two_merged_into_one", pred, ref)

    @add
    def disjoint_lesions() -> Case:
        return Case("disjoint_lesions", _tumour((8, 8, 8), 4), _tumour((26, 24, 16), 4))

    @add
    def anisotropic_1x1x2() -> Case:
        ref = _combine(_tumour((14, 14, 10), 6), _tumour((28, 24, 16), 3))
        pred = _combine(_tumour((15, 14, 11), 6), _tumour((28, 25, 16), 3.5))
        return Case("anisotropic_1x1x2", pred, ref, spacing=(1.0, 1.0, 2.0))

    @add
    def anisotropic_oblique_spacing() -> Case:
        pred, ref = _random_tumour(11)
        return Case("anisotropic_05x08x30", pred, ref, spacing=(0.5, 0.8, 3.0))

    @add
    def brats2021_labels() -> Case:
        ref = _combine(_tumour((12, 12, 10), 6, et=4), _tumour((27, 23, 15), 3, et=4))
        pred = _combine(_tumour((13, 12, 10), 6, et=4), _tumour((5, 27, 20), 2, et=4))
        return Case("brats2021_labels", pred, ref, convention="brats2021")

    @add
    def brats2021_anisotropic() -> Case:
        pred, ref = _random_tumour(5)
        pred[pred == 3] = 4
        ref[ref == 3] = 4
        return Case("brats2021_anisotropic", pred, ref, spacing=(1.2, 1.2, 2.5), convention="brats2021")

    @add
    def no_necrosis_in_reference() -> Case:
        ref = _tumour((18, 16, 12), 7)
        ref[ref == 1] = 3
        return Case("no_necrosis_in_reference", _tumour((18, 16, 12), 7), ref)

    @add
    def enhancing_only_in_prediction() -> Case:
        ref = np.where(_ball((18, 16, 12), 6), 2, 0).astype(np.uint8)
        return Case("enhancing_only_in_prediction", _tumour((18, 16, 12), 6), ref)

    @add
    def single_voxel_lesions() -> Case:
        ref = _tumour((18, 16, 12), 5)
        pred = ref.copy()
        for p in ((2, 2, 2), (33, 3, 20), (5, 28, 12)):
            ref[p] = 3
        pred[2, 2, 2] = 3
        pred[30, 28, 3] = 3
        return Case("single_voxel_lesions", pred, ref)

    @add
    def diagonal_neighbours_are_one_lesion() -> Case:
        ref = _empty()
        pred = _empty()
        for k in range(6):  # a staircase touching only at edges/corners: one 26-connected lesion
            ref[5 + k, 5 + k, 5 + k] = 3
            pred[5 + k, 5 + k, 5 + k] = 3
        pred[5, 5, 5] = 0
        pred[20:23, 20:23, 10:13] = 3
        ref[21:24, 20:23, 10:13] = 3
        return Case("diagonal_neighbours_are_one_lesion", pred, ref)

    @add
    def hollow_lesion() -> Case:
        shell = _ball((18, 16, 12), 8) & ~_ball((18, 16, 12), 5)
        ref = np.where(shell, 3, 0).astype(np.uint8)
        pred = np.where(binary_dilation(shell), 3, 0).astype(np.uint8)
        return Case("hollow_lesion", pred, ref)

    @add
    def under_segmented() -> Case:
        ref = _tumour((18, 16, 12), 8)
        pred = np.where(binary_erosion(ref > 0, iterations=2), ref, 0).astype(np.uint8)
        return Case("under_segmented", pred, ref)

    for seed in (1, 2, 3):
        def random_case(seed: int = seed) -> Case:
            pred, ref = _random_tumour(seed)
            return Case(f"random_tumour_seed{seed}", pred, ref)
        cases.append(random_case)

    @add
    def many_small_fp_and_fn() -> Case:
        rng = np.random.default_rng(7)
        ref = _tumour((18, 16, 12), 6)
        pred = ref.copy()
        for _ in range(6):
            ref[tuple(rng.integers(0, s) for s in SHAPE)] = 2
            pred[tuple(rng.integers(0, s) for s in SHAPE)] = 2
        return Case("many_small_fp_and_fn", pred, ref)

    return cases


CASES: list[Callable[[], Case]] = _builders()
