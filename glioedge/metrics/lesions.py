"""Lesions of one region: connected components, one-to-one matching, per-lesion metrics.

The rules are those of the official BraTS evaluation package (``brats-evaluation`` on
``panoptica``, glioma configuration): a lesion is a connected component of the region mask
(26-connectivity in 3-D, as ``cc3d``'s default); reference and predicted lesions are paired by a
maximum-weight bipartite matching on their Dice (``scipy.optimize.linear_sum_assignment`` on the
cost ``1 − Dice``), a pair is eligible when its Dice is at least 1e-6 (in effect: any overlap);
there is no dilation and no minimum lesion size. A matched reference lesion is a true positive,
an unmatched reference lesion a false negative, an unmatched predicted lesion a false positive.
The per-lesion metrics compare a matched reference lesion with its predicted lesion only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import find_objects, generate_binary_structure, label
from scipy.optimize import linear_sum_assignment

from glioedge.metrics.surface import hd95_from_distances, nsd_from_distances, surface_distances

__all__ = ["MATCH_THRESHOLD", "Lesion", "LesionMatch", "components", "match_lesions"]

#: Smallest Dice for which a reference and a predicted lesion may be paired (panoptica's
#: ``MaxBipartiteMatching(matching_threshold=1e-6)`` in the official glioma configuration).
MATCH_THRESHOLD = 1e-6


@dataclass(frozen=True)
class Lesion:
    """One reference lesion: its size, and its metrics when it was matched."""

    voxels: int
    volume_mm3: float
    matched: bool
    dice: float | None = None
    hd95: float | None = None
    nsd: float | None = None

    def to_dict(self) -> dict[str, float | int | bool | None]:
        """JSON-ready fields."""
        return {"voxels": self.voxels, "volume_mm3": self.volume_mm3, "matched": self.matched,
                "dice": self.dice, "hd95": self.hd95, "nsd": self.nsd}


@dataclass(frozen=True)
class LesionMatch:
    """The lesions of one region in one case, matched."""

    n_ref: int
    n_pred: int
    lesions: tuple[Lesion, ...]  # one per reference lesion, in label order

    @property
    def tp(self) -> int:
        """Matched reference lesions."""
        return sum(1 for les in self.lesions if les.matched)

    @property
    def fn(self) -> int:
        """Reference lesions without a predicted partner."""
        return self.n_ref - self.tp

    @property
    def fp(self) -> int:
        """Predicted lesions without a reference partner."""
        return self.n_pred - self.tp

    def matched_values(self, metric: str) -> list[float]:
        """``metric`` (``dice``, ``hd95`` or ``nsd``) of every matched lesion."""
        return [float(getattr(les, metric)) for les in self.lesions if les.matched]


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components of a binary mask (full connectivity in 3-D, faces in 1-D/2-D).

    The official package uses ``cc3d`` (26-connected) for 3-D arrays and ``scipy.ndimage.label``
    with its default (face) structure below three dimensions; this does the same with scipy.
    """
    mask = np.asarray(mask, dtype=bool)
    structure = generate_binary_structure(mask.ndim, mask.ndim) if mask.ndim >= 3 else None
    labels, n = label(mask, structure=structure)
    return labels, int(n)


def _union_box(a: tuple[slice, ...], b: tuple[slice, ...]) -> tuple[slice, ...]:
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b, strict=True))


def match_lesions(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float],
    nsd_tolerance: float,
) -> LesionMatch:
    """Find, match and measure the lesions of one region.

    Args:
        pred: predicted region mask.
        ref: reference region mask of the same shape.
        spacing: voxel size (mm) per array axis used for the per-lesion HD95, NSD and volumes.
        nsd_tolerance: NSD tolerance in mm.

    Returns:
        The counts and, per reference lesion, its size and (when matched) Dice, HD95 and NSD.
    """
    ref_cc, n_ref = components(ref)
    pred_cc, n_pred = components(pred)
    voxel_mm3 = float(np.prod(spacing))
    ref_sizes = np.bincount(ref_cc.ravel(), minlength=n_ref + 1)
    pred_sizes = np.bincount(pred_cc.ravel(), minlength=n_pred + 1)

    partner: dict[int, int] = {}
    if n_ref and n_pred:
        both = (ref_cc > 0) & (pred_cc > 0)
        pairs, inter = np.unique(np.stack((ref_cc[both], pred_cc[both])), axis=1, return_counts=True)
        cost = np.full((n_ref, n_pred), 1.0 + 1e-6)
        for (r, p), n in zip(pairs.T.tolist(), inter.tolist(), strict=True):
            score = 2.0 * n / (ref_sizes[r] + pred_sizes[p])
            if score >= MATCH_THRESHOLD:
                cost[r - 1, p - 1] = 1.0 - score
        rows, cols = linear_sum_assignment(cost)
        partner = {int(r) + 1: int(c) + 1 for r, c in zip(rows, cols, strict=True) if cost[r, c] < 1.0}

    ref_boxes = find_objects(ref_cc)
    pred_boxes = find_objects(pred_cc)
    lesions = []
    for r in range(1, n_ref + 1):
        size = int(ref_sizes[r])
        p = partner.get(r)
        if p is None:
            lesions.append(Lesion(size, size * voxel_mm3, False))
            continue
        box = _union_box(ref_boxes[r - 1], pred_boxes[p - 1])
        ref_les = ref_cc[box] == r
        pred_les = pred_cc[box] == p
        inter = int(np.count_nonzero(ref_les & pred_les))
        d_pr, d_rp = surface_distances(pred_les, ref_les, spacing)
        lesions.append(Lesion(
            size, size * voxel_mm3, True,
            dice=2.0 * inter / (size + int(pred_sizes[p])),
            hd95=hd95_from_distances(d_pr, d_rp),
            nsd=nsd_from_distances(d_pr, d_rp, nsd_tolerance),
        ))
    return LesionMatch(n_ref=n_ref, n_pred=n_pred, lesions=tuple(lesions))
