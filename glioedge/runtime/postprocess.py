"""Label post-processing (tumour outside the brain removed; nnU-Net's BraTS rule) and tumour
volumes in millilitres.

A glioma is inside the brain: a tumour label outside the brain mask (the input's nonzero voxels
for a skull-stripped input, the extracted brain with its tumour-safe margin otherwise) is a
network error — oedema "found" in the background beside the brain — and becomes background. How
much was removed is reported, and the quality verdict judges the prediction before the removal
(``tumour_outside_brain``: a model that does this on a case is confused by it).

The small-ET rule (Isensee et al., 2020): when the predicted enhancing tumour (ET) is smaller than a
threshold, every ET voxel becomes NCR — a few false-positive ET voxels would cost the whole ET
Dice of a case without enhancement. The threshold is the manifest's
``postprocess.et_min_voxels``, counted at the network's spacing; on another grid it is compared
as a physical volume (threshold voxels × the network's voxel volume).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from glioedge.bundle import PostprocessParams
from glioedge.vocabulary import ET, NUM_CLASSES, VOLUME_CLASSES

__all__ = ["ET", "PostprocessInfo", "apply_postprocess", "tumour_volumes_ml"]

@dataclass(frozen=True)
class PostprocessInfo:
    """What :func:`apply_postprocess` did (goes into the report)."""

    applied: bool
    et_voxels: int
    et_ml: float
    threshold_ml: float
    et_relabelled: bool
    outside_brain_ml: float = 0.0
    outside_brain_fraction: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {"applied": self.applied, "et_voxels": self.et_voxels, "et_ml": self.et_ml,
                "threshold_ml": self.threshold_ml, "et_relabelled": self.et_relabelled,
                "outside_brain_removed_ml": self.outside_brain_ml,
                "outside_brain_fraction": self.outside_brain_fraction}


def voxel_volume_mm3(spacing: Sequence[float]) -> float:
    """Volume of one voxel in mm³."""
    return float(np.prod(np.asarray(spacing, dtype=np.float64)))


def apply_postprocess(
    labels: np.ndarray,
    spacing: Sequence[float],
    params: PostprocessParams,
    network_spacing: Sequence[float],
    *,
    enabled: bool = True,
    brain_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, PostprocessInfo]:
    """Remove tumour outside the brain, then apply the small-ET rule to a label map.

    Args:
        labels: internal classes 0..3 on a grid with voxel ``spacing`` (mm).
        spacing: voxel spacing of ``labels``.
        params: the manifest's post-processing parameters (``et_min_voxels`` 0 disables).
        network_spacing: the network's voxel spacing, in which ``et_min_voxels`` is counted.
        enabled: ``False`` returns the labels unchanged (the info still reports what would be
            removed and ET's size).
        brain_mask: the brain mask on the labels' grid (``None``: nothing is removed).

    Returns:
        ``(labels, info)``; a new array when anything changed, else ``labels`` itself.
    """
    vox_ml = voxel_volume_mm3(spacing) / 1000.0
    out = labels
    tumour = int(np.count_nonzero(labels))
    outside_voxels = 0
    if brain_mask is not None and tumour:
        outside = (labels > 0) & ~np.asarray(brain_mask, bool)
        outside_voxels = int(np.count_nonzero(outside))
        if enabled and outside_voxels:
            out = np.where(outside, 0, labels).astype(labels.dtype, copy=False)
    labels = out
    et_voxels = int(np.count_nonzero(labels == ET))
    threshold_ml = params.et_min_voxels * voxel_volume_mm3(network_spacing) / 1000.0
    et_ml = et_voxels * vox_ml
    relabel = bool(enabled and params.et_min_voxels > 0 and et_voxels > 0 and et_ml < threshold_ml)
    if relabel:
        out = labels.copy()
        out[labels == ET] = params.et_replacement_class
    info = PostprocessInfo(applied=bool(enabled and params.et_min_voxels > 0), et_voxels=et_voxels,
                           et_ml=round(et_ml, 6), threshold_ml=round(threshold_ml, 6),
                           et_relabelled=relabel,
                           outside_brain_ml=round(outside_voxels * vox_ml, 6) if enabled else 0.0,
                           outside_brain_fraction=round(outside_voxels / tumour, 6) if tumour else 0.0)
    return out, info


def tumour_volumes_ml(labels: np.ndarray, spacing: Sequence[float]) -> dict[str, float]:
    """Volumes (mL) of ET, TC, WT, NCR and ED: voxel counts × voxel volume of the grid."""
    counts = np.bincount(np.asarray(labels, dtype=np.uint8).ravel(), minlength=NUM_CLASSES)
    vox_ml = voxel_volume_mm3(spacing) / 1000.0
    return {name: float(sum(int(counts[c]) for c in classes) * vox_ml)
            for name, classes in VOLUME_CLASSES.items()}
