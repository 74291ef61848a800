"""BraTS evaluation: Dice and 95th-percentile Hausdorff distance per tumour region.

Conventions (those of the BraTS challenge evaluation and of ``medpy.metric.binary``):

- Regions are unions of internal classes (0 background, 1 NCR, 2 ED, 3 ET):
  WT = {1, 2, 3}, TC = {1, 3}, ET = {3} (:data:`glioedge.data.labels.REGIONS`).
- Both prediction and reference empty: Dice 1, HD95 0 (a correct "no tumour").
  Exactly one of them empty: Dice 0, HD95 :data:`HD95_EMPTY` (373.13 mm, the diagonal of the
  BraTS 240×240×155 1 mm volume, as the BraTS evaluation reports it).
- Surface voxels are ``mask XOR binary_erosion(mask)`` with the face-connected (connectivity 1,
  6-neighbourhood in 3-D) structuring element and zero outside the array; distances are Euclidean
  in millimetres (``distance_transform_edt(..., sampling=spacing)``) from every surface voxel of one
  mask to the nearest surface voxel of the other; HD95 is the 95th percentile (numpy's linear
  interpolation) of the union of both directed distance sets — exactly ``medpy.metric.binary.hd95``.

The distance transforms run on the bounding box of both masks plus a one-voxel margin (clipped to
the array), which gives the same surfaces and distances as the full array: the erosion sees the
same zero border, and every surface voxel of both masks lies inside the box.

numpy/scipy only (no torch).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.ndimage import binary_erosion, distance_transform_edt, generate_binary_structure

from glioedge.data.labels import REGIONS
from glioedge.errors import InputError

__all__ = [
    "HD95_EMPTY",
    "METRICS",
    "dice",
    "evaluate_case",
    "hd95",
    "summarise",
    "surface_distances",
]

#: HD95 (mm) reported when exactly one of prediction and reference is empty (BraTS convention).
HD95_EMPTY = 373.13
#: Metric names in the per-case result dictionaries.
METRICS: tuple[str, ...] = ("dice", "hd95")


def _as_bool_pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred)
    ref = np.asarray(ref)
    if pred.shape != ref.shape:
        raise InputError(f"prediction and reference masks differ in shape: {pred.shape} vs {ref.shape}")
    if pred.ndim == 0:
        raise InputError("masks must have at least one dimension, got scalars")
    return pred.astype(bool, copy=False), ref.astype(bool, copy=False)


def _check_spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    sp = tuple(float(s) for s in spacing)
    if len(sp) != ndim:
        raise InputError(f"spacing {tuple(spacing)} has {len(sp)} values for {ndim}-D masks")
    if not all(math.isfinite(s) and s > 0 for s in sp):
        raise InputError(f"spacing must be positive and finite (mm), got {sp}")
    return sp


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice similarity coefficient ``2|P∩R| / (|P| + |R|)`` of two binary masks.

    Args:
        pred: predicted mask (any array; non-zero is foreground).
        ref: reference mask of the same shape.

    Returns:
        Dice in [0, 1]; 1.0 when both masks are empty, 0.0 when exactly one is.

    Raises:
        InputError: the shapes differ or the inputs are scalars.
    """
    p, r = _as_bool_pair(pred, ref)
    n_p = int(np.count_nonzero(p))
    n_r = int(np.count_nonzero(r))
    if n_p + n_r == 0:
        return 1.0
    inter = int(np.count_nonzero(p & r))
    return 2.0 * inter / (n_p + n_r)


def _bounding_box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    """Slices of the bounding box of ``mask`` grown by ``margin`` voxels, clipped to the array."""
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        idx = np.flatnonzero(np.any(mask, axis=other) if other else mask)
        lo = max(int(idx[0]) - margin, 0)
        hi = min(int(idx[-1]) + 1 + margin, mask.shape[axis])
        box.append(slice(lo, hi))
    return tuple(box)


def surface_distances(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances (mm) between two non-empty binary masks.

    Args:
        pred: predicted mask.
        ref: reference mask of the same shape.
        spacing: voxel size in mm along each array axis.

    Returns:
        ``(d_pred_to_ref, d_ref_to_pred)``: for every surface voxel of ``pred`` the distance to the
        nearest surface voxel of ``ref``, and the other way round (float64, C order of the voxels).

    Raises:
        InputError: shapes or spacing do not match, or either mask is empty.
    """
    p, r = _as_bool_pair(pred, ref)
    sp = _check_spacing(spacing, p.ndim)
    if not p.any() or not r.any():
        raise InputError("surface distances need two non-empty masks")
    box = _bounding_box(p | r, margin=1)
    p, r = p[box], r[box]
    footprint = generate_binary_structure(p.ndim, 1)
    p_border = p & ~binary_erosion(p, structure=footprint, iterations=1)
    r_border = r & ~binary_erosion(r, structure=footprint, iterations=1)
    d_p_to_r = distance_transform_edt(~r_border, sampling=sp)[p_border]
    d_r_to_p = distance_transform_edt(~p_border, sampling=sp)[r_border]
    return np.asarray(d_p_to_r, dtype=np.float64), np.asarray(d_r_to_p, dtype=np.float64)


def hd95(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> float:
    """95th-percentile symmetric Hausdorff distance (mm), as ``medpy.metric.binary.hd95``.

    Args:
        pred: predicted mask (non-zero is foreground).
        ref: reference mask of the same shape.
        spacing: voxel size in mm along each array axis (``(si, sj, sk)`` for ``[i, j, k]``).

    Returns:
        The 95th percentile of the union of both directed surface-distance sets; 0.0 when both
        masks are empty, :data:`HD95_EMPTY` when exactly one is.

    Raises:
        InputError: shapes differ, or ``spacing`` has the wrong length or non-positive values.
    """
    p, r = _as_bool_pair(pred, ref)
    _check_spacing(spacing, p.ndim)
    has_p, has_r = bool(p.any()), bool(r.any())
    if not has_p and not has_r:
        return 0.0
    if has_p != has_r:
        return HD95_EMPTY
    d1, d2 = surface_distances(p, r, spacing)
    return float(np.percentile(np.concatenate((d1, d2)), 95))


def evaluate_case(
    pred_labels: np.ndarray,
    ref_labels: np.ndarray,
    spacing: Sequence[float],
    regions: Mapping[str, Sequence[int]] = REGIONS,
) -> dict[str, dict[str, float]]:
    """Dice and HD95 of every BraTS region for one case.

    Args:
        pred_labels: predicted internal class labels (0..3), shape ``(i, j, k)``.
        ref_labels: reference internal class labels, same shape.
        spacing: voxel size in mm along ``(i, j, k)``.
        regions: region name → internal classes; default WT/TC/ET.

    Returns:
        ``{"WT": {"dice": ..., "hd95": ...}, "TC": {...}, "ET": {...}}`` (plain floats).

    Raises:
        InputError: shapes differ or ``spacing`` is invalid.
    """
    pred = np.asarray(pred_labels)
    ref = np.asarray(ref_labels)
    if pred.shape != ref.shape:
        raise InputError(f"prediction and reference label maps differ in shape: {pred.shape} vs {ref.shape}")
    _check_spacing(spacing, pred.ndim)
    result: dict[str, dict[str, float]] = {}
    for name, classes in regions.items():
        p = np.isin(pred, classes)
        r = np.isin(ref, classes)
        result[name] = {"dice": dice(p, r), "hd95": hd95(p, r, spacing)}
    return result


def summarise(
    case_results: Sequence[Mapping[str, Mapping[str, float]]],
) -> dict[str, dict[str, dict[str, float]]]:
    """Aggregate per-case results (from :func:`evaluate_case`) over cases.

    Args:
        case_results: one ``{region: {metric: value}}`` mapping per case, all with the same
            regions and metrics.

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
