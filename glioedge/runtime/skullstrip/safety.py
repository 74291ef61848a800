"""Tumour safety of a brain mask: union over series, hole filling, a margin in mm, a grown box.

A brain mask that cuts tumour away loses it for good (the tumour model sees zeros there), while a
mask a few millimetres too large costs nothing but a few voxels of skull in the crop box. So the
runtime takes the union of the masks of the series the network ran on (:mod:`.extract`: the
finest, or all of them when its volume is implausible or ``series="all"``), fills holes (a
necrotic core or a cyst that the extractor left out is inside the brain by definition), keeps the
largest connected component, dilates by a margin in millimetres (anisotropic voxels handled by
the Euclidean distance in mm), and, after segmentation, grows the mask around any tumour component
that touches its border so that the caller can re-run on the grown box.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from glioedge.errors import InputError

__all__ = [
    "brain_volume_ml", "dilate_mm", "grow_for_tumour", "largest_component", "plausibility_warnings",
    "tumour_safe_mask",
]  # fmt: skip


def brain_volume_ml(mask: np.ndarray, spacing: Sequence[float]) -> float:
    """Volume of ``mask`` in millilitres (1 mL = 1000 mm³)."""
    return float(np.count_nonzero(mask)) * float(np.prod(np.asarray(spacing, dtype=np.float64))) / 1000.0


def plausibility_warnings(volume_ml: float, min_ml: float = 800.0, max_ml: float = 2000.0) -> list[str]:
    """Warnings for an implausible adult brain volume (typically 1000–1600 mL)."""
    if volume_ml < min_ml:
        return [f"brain volume {volume_ml:.0f} mL is below {min_ml:.0f} mL: the extraction may have "
                f"cut brain (or tumour), or the field of view does not cover the whole brain"]
    if volume_ml > max_ml:
        return [f"brain volume {volume_ml:.0f} mL is above {max_ml:.0f} mL: the extraction may have "
                f"kept skull, scalp or neck"]
    return []


def _box(mask: np.ndarray, grow: Sequence[int]) -> tuple[slice, ...]:
    idx = np.nonzero(mask)
    return tuple(slice(max(0, int(i.min()) - g), min(n, int(i.max()) + g + 1))
                 for i, g, n in zip(idx, grow, mask.shape, strict=True))


def dilate_mm(mask: np.ndarray, spacing: Sequence[float], margin_mm: float) -> np.ndarray:
    """Voxels within ``margin_mm`` (Euclidean, physical) of ``mask``; computed in its bounding box."""
    mask = np.asarray(mask, dtype=bool)
    if margin_mm <= 0 or not mask.any():
        return mask.copy()
    spacing = np.asarray(spacing, dtype=np.float64)
    box = _box(mask, [int(np.ceil(margin_mm / s)) + 1 for s in spacing])
    dist = ndimage.distance_transform_edt(~mask[box], sampling=spacing)
    out = np.zeros_like(mask)
    out[box] = dist <= margin_mm
    return out


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of ``mask`` (empty stays empty)."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    if n <= 1:
        return labels > 0
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(sizes.argmax())


def tumour_safe_mask(
    masks: Sequence[np.ndarray], spacing: Sequence[float], margin_mm: float = 3.0, *,
    keep_largest: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Union of per-series masks → largest component → holes filled → dilated by ``margin_mm``.

    Returns:
        ``(brain, mask)``: the filled union before dilation (its volume is the brain volume) and
        the dilated mask the tumour model is given.

    Raises:
        InputError: no masks, masks of different shapes, or an empty union.
    """
    if not masks:
        raise InputError("tumour_safe_mask: no masks")
    shape = masks[0].shape
    if any(m.shape != shape for m in masks):
        raise InputError(f"tumour_safe_mask: masks on different grids {[m.shape for m in masks]}")
    union = np.zeros(shape, dtype=bool)
    for m in masks:
        union |= np.asarray(m, dtype=bool)
    if not union.any():
        raise InputError("brain extraction found no brain in any selected series: is the input a head MR?")
    if keep_largest:
        union = largest_component(union)
    box = _box(union, (1, 1, 1))
    filled = np.zeros_like(union)
    filled[box] = ndimage.binary_fill_holes(union[box])
    return filled, dilate_mm(filled, spacing, margin_mm)


def grow_for_tumour(
    mask: np.ndarray, labels: np.ndarray, spacing: Sequence[float], margin_mm: float = 10.0,
) -> tuple[np.ndarray, int]:
    """Grow ``mask`` around every connected tumour component (``labels > 0``) that touches its
    border, so that a re-run on the grown mask sees the whole lesion.

    Args:
        mask: the brain mask the segmentation ran with.
        labels: the predicted label map on the same grid.
        spacing: voxel spacing (mm).
        margin_mm: how far beyond such a component the mask grows.

    Returns:
        ``(grown mask, number of components that touched the border)``; the mask is unchanged
        (a copy) when none did.
    """
    mask = np.asarray(mask, dtype=bool)
    tumour = np.asarray(labels) > 0
    if not tumour.any():
        return mask.copy(), 0
    border = mask & ~ndimage.binary_erosion(mask, border_value=0)
    comp, _ = ndimage.label(tumour, structure=np.ones((3, 3, 3), dtype=bool))
    touching = np.unique(comp[border & tumour])
    touching = touching[touching > 0]
    if touching.size == 0:
        return mask.copy(), 0
    lesion = np.isin(comp, touching)
    return mask | dilate_mm(lesion, spacing, margin_mm), int(touching.size)
