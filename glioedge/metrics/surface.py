"""Overlap and surface metrics of two binary masks: Dice, sensitivity/specificity, HD95, NSD.

Surfaces and distances follow ``medpy.metric.binary`` and the official BraTS package
(``panoptica``): surface voxels are ``mask XOR binary_erosion(mask)`` with the face-connected
structuring element and zero outside the array; a directed distance is the Euclidean distance
(``distance_transform_edt(..., sampling=spacing)``) from every surface voxel of one mask to the
nearest surface voxel of the other. HD95 is the 95th percentile (numpy's linear interpolation) of
both directed sets pooled; NSD is the mean of the two fractions of surface voxels lying within
the tolerance (panoptica's formula, which is GaNDLF's, not the surface-area weighted one of
Nikolov et al.).

The distance transforms run on the bounding box of both masks plus a one-voxel margin (clipped to
the array): the erosion sees the same zero border, and every surface voxel lies inside the box,
so the distances equal those on the full array.

The empty-mask conventions are not decided here: callers (:mod:`glioedge.metrics.brats`) check
emptiness first and apply glioedge's or the official convention. numpy/scipy only (no torch).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import numpy as np
from scipy.ndimage import binary_erosion, distance_transform_edt, generate_binary_structure

from glioedge.errors import InputError

__all__ = [
    "HD95_EMPTY",
    "as_bool_pair",
    "bounding_box",
    "check_spacing",
    "dice",
    "hd95",
    "hd95_from_distances",
    "nsd_from_distances",
    "surface_distances",
]

#: HD95 (mm) glioedge reports when exactly one of prediction and reference is empty: the diagonal
#: of the BraTS 240×240×155 1 mm volume (373.13 mm), as the BraTS evaluation has reported it.
HD95_EMPTY = 373.13


def as_bool_pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks as boolean arrays of one shape.

    Raises:
        InputError: the shapes differ or the inputs are scalars.
    """
    pred = np.asarray(pred)
    ref = np.asarray(ref)
    if pred.shape != ref.shape:
        raise InputError(f"prediction and reference masks differ in shape: {pred.shape} vs {ref.shape}")
    if pred.ndim == 0:
        raise InputError("masks must have at least one dimension, got scalars")
    return pred.astype(bool, copy=False), ref.astype(bool, copy=False)


def check_spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    """``spacing`` as a tuple of positive finite floats, one per axis.

    Raises:
        InputError: wrong length, or a value that is not positive and finite.
    """
    sp = tuple(float(s) for s in spacing)
    if len(sp) != ndim:
        raise InputError(f"spacing {tuple(spacing)} has {len(sp)} values for {ndim}-D masks")
    if not all(math.isfinite(s) and s > 0 for s in sp):
        raise InputError(f"spacing must be positive and finite (mm), got {sp}")
    return sp


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice similarity coefficient ``2|P∩R| / (|P| + |R|)`` of two binary masks.

    Returns:
        Dice in [0, 1]; 1.0 when both masks are empty (glioedge's convention: a correct
        "no tumour"), 0.0 when exactly one is.

    Raises:
        InputError: the shapes differ or the inputs are scalars.
    """
    p, r = as_bool_pair(pred, ref)
    n_p = int(np.count_nonzero(p))
    n_r = int(np.count_nonzero(r))
    if n_p + n_r == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(p & r)) / (n_p + n_r)


def bounding_box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
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
    p, r = as_bool_pair(pred, ref)
    sp = check_spacing(spacing, p.ndim)
    if not p.any() or not r.any():
        raise InputError("surface distances need two non-empty masks")
    box = bounding_box(p | r, margin=1)
    p, r = p[box], r[box]
    footprint = generate_binary_structure(p.ndim, 1)
    p_border = p & ~binary_erosion(p, structure=footprint, iterations=1)
    r_border = r & ~binary_erosion(r, structure=footprint, iterations=1)
    d_p_to_r = distance_transform_edt(~r_border, sampling=sp)[p_border]
    d_r_to_p = distance_transform_edt(~p_border, sampling=sp)[r_border]
    return np.asarray(d_p_to_r, dtype=np.float64), np.asarray(d_r_to_p, dtype=np.float64)


def hd95_from_distances(d_pred_to_ref: np.ndarray, d_ref_to_pred: np.ndarray) -> float:
    """95th percentile of both directed surface-distance sets pooled."""
    return float(np.percentile(np.concatenate((d_pred_to_ref, d_ref_to_pred)), 95))


def nsd_from_distances(d_pred_to_ref: np.ndarray, d_ref_to_pred: np.ndarray, tolerance: float) -> float:
    """Normalised surface Dice: the mean of the two fractions of surface voxels within ``tolerance``.

    Written as panoptica writes it (``(tp_a + tp_b) / (tp_a + tp_b + fp + fn + tiny)``), so the
    official-compatibility mode agrees to the last bits.
    """
    n_a, n_b = d_pred_to_ref.size, d_ref_to_pred.size
    tp_a = np.sum(d_pred_to_ref <= tolerance) / n_a
    tp_b = np.sum(d_ref_to_pred <= tolerance) / n_b
    fp = np.sum(d_pred_to_ref > tolerance) / n_a
    fn = np.sum(d_ref_to_pred > tolerance) / n_b
    return float((tp_a + tp_b) / (tp_a + tp_b + fp + fn + sys.float_info.min))


def hd95(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> float:
    """95th-percentile symmetric Hausdorff distance (mm), as ``medpy.metric.binary.hd95``.

    Args:
        pred: predicted mask (non-zero is foreground).
        ref: reference mask of the same shape.
        spacing: voxel size in mm along each array axis (``(si, sj, sk)`` for ``[i, j, k]``).

    Returns:
        HD95 in mm; 0.0 when both masks are empty, :data:`HD95_EMPTY` when exactly one is
        (glioedge's conventions; :func:`glioedge.metrics.brats.evaluate_case` offers the
        official ones).

    Raises:
        InputError: shapes differ, or ``spacing`` has the wrong length or non-positive values.
    """
    p, r = as_bool_pair(pred, ref)
    check_spacing(spacing, p.ndim)
    has_p, has_r = bool(p.any()), bool(r.any())
    if not has_p and not has_r:
        return 0.0
    if has_p != has_r:
        return HD95_EMPTY
    return hd95_from_distances(*surface_distances(p, r, spacing))
