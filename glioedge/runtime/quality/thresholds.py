"""The quality thresholds: defaults in one place, overridable by the bundle manifest's ``quality``
block (``thresholds``), which ``glioedge quality calibrate`` writes from held-out cases."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from glioedge.errors import ModelError

__all__ = ["QualityThresholds"]


@dataclass(frozen=True)
class QualityThresholds:
    """Where each signal turns a case into ``review`` or ``reject``.

    Attributes:
        distribution_review, distribution_reject: Wasserstein-1 distance (z-score units) of a
            modality's intensity profile inside the brain from the training cases' profile;
            each is raised to ``distribution_spread_factor`` (``×2`` for reject) × the largest
            distance of a training case from that profile (the cohort's normal variation).
        distribution_spread_factor: see above.
        border_review, border_reject: brain mask area on a face of the volume, as a fraction of
            the brain's largest cross-section parallel to it (0: the brain ends inside the field
            of view; about 1: cut through its middle).
        slice_thickness_review_mm, slice_thickness_reject_mm: largest voxel spacing of the
            reference grid, used when the bundle records no training thickness; with it, review
            above ``slice_thickness_factor`` × the thickest training case.
        slice_thickness_factor: see above.
        uncovered_review, uncovered_reject: fraction of the brain mask where a series has no
            signal (exactly 0: outside its own field of view after resampling).
        entropy_review, entropy_reject: mean normalised predictive entropy (0..1) inside the
            predicted tumour.
        mirror_disagreement_review, mirror_disagreement_reject: mean share of the mirrored
            predictions whose label differs from their average's, inside the predicted tumour
            (0..1; measured only with test-time mirroring).
        outside_brain_review, outside_brain_reject: fraction of tumour voxels outside the brain
            mask.
        isolated_et_review: fraction of enhancing-tumour voxels in components that hold no
            necrosis or oedema (enhancement without a surrounding tumour).
        components_review: tumour components of at least ``component_min_ml``, beyond which a
            case is reviewed.
        component_min_ml: smallest component counted.
        small_fraction_review: fraction of tumour components smaller than ``component_min_ml``
            (speckle) when there are at least five components.
        core_fraction_review: share of the whole tumour that is tumour core (NCR + ET) below
            which a tumour of at least ``core_min_wt_ml`` is reviewed (oedema without a core).
        core_min_wt_ml: smallest whole tumour (mL) the core fraction is judged on; a smaller
            one is reviewed only when it has no core voxel at all (oedema alone).
        enhancing_fraction_review: share of the tumour core that is enhancing tumour below which
            a core of at least ``enhancing_min_core_ml`` is reviewed (a core without enhancement:
            contrast not given or failed, or a non-enhancing tumour). The default reviews a core
            with almost no enhancement; ``glioedge quality calibrate`` sets it from the site's
            own held-out cases.
        enhancing_min_core_ml: smallest tumour core (mL) the enhancing fraction is judged on
            (a smaller one, such as a false core on a healthy brain, is too small to judge).
        tumour_contrast_factor: a predicted tumour region (whole tumour, enhancing tumour) whose
            contrast to the brain in a modality is below this × the faintest training case's is
            reviewed (``faint_tumour``, ``faint_enhancement``).
        tumour_contrast_min_training: a region and modality are judged only where the faintest
            training case stood out at least this much (robust sigmas: the whole tumour on FLAIR,
            the enhancing tumour on T1CE; not the whole tumour on T1CE).
        wt_brain_fraction_reject: whole tumour larger than this fraction of the brain mask.
        wt_max_ml_reject: whole tumour larger than this (mL).
    """

    distribution_review: float = 0.15
    distribution_reject: float = 0.6
    distribution_spread_factor: float = 3.0
    border_review: float = 0.15
    border_reject: float = 0.5
    slice_thickness_review_mm: float = 3.0
    slice_thickness_reject_mm: float = 6.0
    slice_thickness_factor: float = 1.5
    uncovered_review: float = 0.05
    uncovered_reject: float = 0.3
    entropy_review: float = 0.35
    entropy_reject: float = 0.6
    mirror_disagreement_review: float = 0.1
    mirror_disagreement_reject: float = 0.3
    outside_brain_review: float = 0.05
    outside_brain_reject: float = 0.25
    isolated_et_review: float = 0.25
    components_review: int = 6
    component_min_ml: float = 0.1
    small_fraction_review: float = 0.8
    core_fraction_review: float = 0.05
    core_min_wt_ml: float = 5.0
    enhancing_fraction_review: float = 0.05
    enhancing_min_core_ml: float = 5.0
    tumour_contrast_factor: float = 0.5
    tumour_contrast_min_training: float = 1.0
    wt_brain_fraction_reject: float = 0.6
    wt_max_ml_reject: float = 600.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return asdict(self)

    @classmethod
    def from_manifest(cls, block: Mapping[str, Any] | None) -> QualityThresholds:
        """The defaults, overridden by ``block["thresholds"]`` (the manifest's ``quality`` block).

        Raises:
            ModelError: an unknown threshold name or a value that is not a number.
        """
        given = dict((block or {}).get("thresholds") or {})
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ModelError(f"manifest quality.thresholds: unknown keys {unknown}; valid: {sorted(known)}")
        try:
            values = {k: (int(v) if k == "components_review" else float(v)) for k, v in given.items()}
        except (TypeError, ValueError) as exc:
            raise ModelError(f"manifest quality.thresholds: values must be numbers ({exc})") from None
        return replace(cls(), **values)
