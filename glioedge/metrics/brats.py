"""The BraTS 2023+ metric set of one case, per region, with glioedge's or the official conventions.

Per region (WT, TC, ET, NCR, ED; :data:`EVAL_REGIONS`): global Dice, HD95 and normalised surface
Dice (NSD), voxel sensitivity and specificity, volumes and their differences, and the lesion-wise
metrics that BraTS 2023+ ranks by (lesion counts TP/FP/FN, precision, recall, F1, mean Dice/HD95/
NSD of the matched lesions, and the ranking form that scores every missed or spurious lesion as
Dice 0 / the HD95 penalty). The lesion rules are in :mod:`glioedge.metrics.lesions`.

Two conventions (``docs/evaluation.md`` has the table and the reasons):

- ``official=False`` (glioedge, the default): distances in millimetres on the physical voxel grid,
  NSD tolerance ``nsd_tolerance`` mm; a region empty in both masks scores Dice 1, HD95 0, NSD 1 (a
  correct "no tumour", so that means over cases stay defined); empty in exactly one scores Dice 0,
  NSD 0 and HD95 :data:`~glioedge.metrics.surface.HD95_EMPTY`; two non-empty masks get their real
  HD95 even when they do not overlap.
- ``official=True`` reproduces ``brats-evaluation`` 0.0.10 (panoptica 2.1.7, glioma configuration)
  run on NIfTI files: global HD95 and NSD ignore the voxel spacing (unit voxels, NSD tolerance 0.5);
  the lesion-wise metrics use the spacing in reversed axis order (panoptica reads NIfTI through
  SimpleITK and applies its (x, y, z) spacing to the (z, y, x) array) with tolerance = the smallest
  spacing; empty in both → NaN; empty in one, or no overlap at all → Dice 0, NSD 0, HD95 ``inf``
  (the package's CSV writes 373). On BraTS's 1 mm isotropic data the spacing differences vanish.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Final

import numpy as np

from glioedge.errors import InputError
from glioedge.metrics.lesions import LesionMatch, components, match_lesions
from glioedge.metrics.surface import (
    HD95_EMPTY,
    bounding_box,
    check_spacing,
    dice,
    hd95,
    hd95_from_distances,
    nsd_from_distances,
    surface_distances,
)
from glioedge.vocabulary import ED, NCR, REGIONS

__all__ = [
    "EVAL_REGIONS",
    "OFFICIAL_HD95_PENALTY",
    "OFFICIAL_REGION_NAMES",
    "RegionMetrics",
    "count_lesions",
    "evaluate_case",
    "region_metrics",
]

#: Regions of the full evaluation: the three BraTS regions, then the two single classes.
EVAL_REGIONS: Final = MappingProxyType({**REGIONS, "NCR": (NCR,), "ED": (ED,)})
#: The official package's group name of each region (glioma configuration).
OFFICIAL_REGION_NAMES: Final = MappingProxyType(
    {"WT": "wt", "TC": "tc", "ET": "et", "NCR": "netc", "ED": "snfh"})
#: HD95 the official package's ranking parser scores a missed or spurious lesion with.
OFFICIAL_HD95_PENALTY: Final[float] = 373.0


@dataclass(frozen=True)
class RegionMetrics:
    """Every metric of one region in one case (NaN where undefined, see the module docstring)."""

    dice: float
    hd95: float
    nsd: float
    sensitivity: float
    specificity: float
    voxels_pred: int
    voxels_ref: int
    volume_pred_ml: float
    volume_ref_ml: float
    volume_diff_ml: float  # prediction − reference
    volume_rel_diff: float  # (prediction − reference) / reference; NaN when the reference is empty
    lesion_tp: int
    lesion_fp: int
    lesion_fn: int
    lesion_precision: float
    lesion_recall: float
    lesion_f1: float
    lesion_dice: float  # mean over matched lesions
    lesion_dice_std: float
    lesion_hd95: float
    lesion_hd95_std: float
    lesion_nsd: float
    lesion_nsd_std: float
    lesion_dice_ranked: float  # BraTS 2023 ranking: missed/spurious lesions count as Dice 0
    lesion_hd95_ranked: float  # ... and as the HD95 penalty
    lesions: tuple[dict, ...] = field(default=(), repr=False)

    def scalars(self) -> dict[str, float | int]:
        """Every number, without the per-lesion list."""
        out = asdict(self)
        out.pop("lesions")
        return out


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def _global(p: np.ndarray, r: np.ndarray, spacing: tuple[float, ...], tol: float, official: bool,
            n_pred_cc: int, n_ref_cc: int) -> tuple[float, float, float]:
    """Global Dice, HD95, NSD under the chosen convention."""
    has_p, has_r = bool(p.any()), bool(r.any())
    if official:
        if not (p & r).any():  # panoptica: no overlap at all is the zero-TP edge case
            if n_pred_cc + n_ref_cc == 0:
                return math.nan, math.nan, math.nan
            return 0.0, math.inf, 0.0
    elif not has_p and not has_r:
        return 1.0, 0.0, 1.0
    elif has_p != has_r:
        return 0.0, HD95_EMPTY, 0.0
    d_pr, d_rp = surface_distances(p, r, spacing)
    return dice(p, r), hd95_from_distances(d_pr, d_rp), nsd_from_distances(d_pr, d_rp, tol)


def _lesionwise(m: LesionMatch, official: bool) -> dict[str, float]:
    """Mean/std of the matched lesions' metrics, detection scores and the ranking form."""
    tp, fp, fn = m.tp, m.fp, m.fn
    none_at_all = m.n_pred + m.n_ref == 0
    penalty = OFFICIAL_HD95_PENALTY if official else HD95_EMPTY
    out: dict[str, float] = {
        "lesion_precision": _ratio(tp, tp + fp),
        "lesion_recall": _ratio(tp, tp + fn),
    }
    if tp:
        out["lesion_f1"] = tp / (tp + 0.5 * fp + 0.5 * fn)
    elif none_at_all:
        out["lesion_f1"] = math.nan if official else 1.0
    else:
        out["lesion_f1"] = 0.0
    for metric, worst, best in (("dice", 0.0, 1.0), ("hd95", math.inf if official else HD95_EMPTY, 0.0),
                                ("nsd", 0.0, 1.0)):
        values = m.matched_values(metric)
        if values:
            out[f"lesion_{metric}"] = float(np.average(values))
            out[f"lesion_{metric}_std"] = float(np.std(values))
        else:
            out[f"lesion_{metric}"] = (math.nan if official else best) if none_at_all else worst
            out[f"lesion_{metric}_std"] = math.nan
    # The ranking form (BraTS 2023; the official package's parse_mets_results with no size and
    # overlap thresholds): every missed and every spurious lesion scores Dice 0 / HD95 penalty.
    if m.n_ref == 0:
        if official:  # the parser reports no lesion-wise figure for a case without lesions
            ranked_dice, ranked_hd95 = math.nan, math.nan
        elif m.n_pred == 0:
            ranked_dice, ranked_hd95 = 1.0, 0.0
        else:
            ranked_dice, ranked_hd95 = 0.0, penalty
    else:
        ranked_dice = float(np.mean(m.matched_values("dice") + [0.0] * (fp + fn)))
        ranked_hd95 = float(np.mean(m.matched_values("hd95") + [penalty] * (fp + fn)))
    out["lesion_dice_ranked"] = ranked_dice
    out["lesion_hd95_ranked"] = ranked_hd95
    return out


def region_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float],
    *,
    official: bool = False,
    nsd_tolerance: float = 1.0,
) -> RegionMetrics:
    """All metrics of one region (binary masks) under glioedge's or the official conventions.

    Args:
        pred: predicted region mask.
        ref: reference region mask, same shape.
        spacing: voxel size in mm per array axis.
        official: reproduce the official package (see the module docstring).
        nsd_tolerance: NSD tolerance in mm (glioedge convention; the official one is fixed).

    Raises:
        InputError: shapes or spacing invalid.
    """
    p = np.asarray(pred, dtype=bool)
    r = np.asarray(ref, dtype=bool)
    if p.shape != r.shape:
        raise InputError(f"prediction and reference masks differ in shape: {p.shape} vs {r.shape}")
    sp = check_spacing(spacing, p.ndim)
    size = p.size
    union = p | r
    if union.any():  # every metric but the specificity lives in the bounding box (+1 voxel of zeros)
        box = bounding_box(union, margin=1)
        p, r = p[box], r[box]
    if official:
        global_sp, global_tol = (1.0,) * p.ndim, 0.5
        lesion_sp, lesion_tol = sp[::-1], min(sp)
    else:
        global_sp = lesion_sp = sp
        global_tol = lesion_tol = float(nsd_tolerance)
    match = match_lesions(p, r, lesion_sp, lesion_tol)
    g_dice, g_hd95, g_nsd = _global(p, r, global_sp, global_tol, official, match.n_pred, match.n_ref)
    n_p, n_r = int(np.count_nonzero(p)), int(np.count_nonzero(r))
    n_tp = int(np.count_nonzero(p & r))
    ml = float(np.prod(sp)) / 1000.0
    return RegionMetrics(
        dice=g_dice, hd95=g_hd95, nsd=g_nsd,
        sensitivity=_ratio(n_tp, n_r),
        specificity=_ratio(size - n_p - n_r + n_tp, size - n_r),
        voxels_pred=n_p, voxels_ref=n_r,
        volume_pred_ml=n_p * ml, volume_ref_ml=n_r * ml,
        volume_diff_ml=(n_p - n_r) * ml, volume_rel_diff=_ratio(n_p - n_r, n_r),
        lesion_tp=match.tp, lesion_fp=match.fp, lesion_fn=match.fn,
        lesions=tuple(les.to_dict() for les in match.lesions),
        **_lesionwise(match, official),
    )


def evaluate_case(
    pred_labels: np.ndarray,
    ref_labels: np.ndarray,
    spacing: Sequence[float],
    regions: Mapping[str, Sequence[int]] = REGIONS,
    *,
    full: bool = False,
    official: bool = False,
    nsd_tolerance: float = 1.0,
) -> dict:
    """Metrics of every region of one case (internal class labels 0..3).

    Args:
        pred_labels: predicted internal class labels, shape ``(i, j, k)``.
        ref_labels: reference internal class labels, same shape.
        spacing: voxel size in mm along ``(i, j, k)``.
        regions: region name → internal classes; default WT/TC/ET (:data:`EVAL_REGIONS` adds
            NCR and ED).
        full: ``False`` (training validation): ``{region: {"dice", "hd95"}}`` with glioedge's
            conventions, the cheap pair; ``True``: ``{region: RegionMetrics}``, the whole set.
        official: with ``full``, the official package's conventions.
        nsd_tolerance: with ``full``, the NSD tolerance in mm (glioedge convention).

    Raises:
        InputError: shapes differ or ``spacing`` is invalid.
    """
    pred = np.asarray(pred_labels)
    ref = np.asarray(ref_labels)
    if pred.shape != ref.shape:
        raise InputError(f"prediction and reference label maps differ in shape: {pred.shape} vs {ref.shape}")
    check_spacing(spacing, pred.ndim)
    result: dict = {}
    for name, classes in regions.items():
        p = np.isin(pred, classes)
        r = np.isin(ref, classes)
        if full:
            result[name] = region_metrics(p, r, spacing, official=official, nsd_tolerance=nsd_tolerance)
        else:
            result[name] = {"dice": dice(p, r), "hd95": hd95(p, r, spacing)}
    return result


def count_lesions(mask: np.ndarray) -> int:
    """Number of lesions (connected components, as the matching counts them) in a mask."""
    return components(mask)[1]
