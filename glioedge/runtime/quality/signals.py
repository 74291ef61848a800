"""The quality signals, one function each: scores plus the reasons they give (numpy/scipy only).

Each function returns ``(scores, reasons)``; a signal that cannot be computed says why in its
scores (``"available": False`` and ``"why"``) instead of guessing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from glioedge.intensity_profile import profile_distance
from glioedge.runtime.quality.thresholds import QualityThresholds
from glioedge.vocabulary import ET, NCR

__all__ = ["Reason", "anatomy", "coverage", "disagreement_stats", "distribution", "entropy_stats",
           "uncertainty"]

Scores = dict[str, Any]
_MAX_ENTROPY_VOXELS = 100_000
CORE = (NCR, ET)


@dataclass(frozen=True)
class Reason:
    """One reason of a verdict: a short code, its severity (``review``, ``reject`` or ``info``:
    information that does not lower the verdict) and a sentence for the radiologist."""

    code: str
    severity: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "severity": self.severity, "message": self.message}


def _grade(value: float, review: float, reject: float) -> str | None:
    if value > reject:
        return "reject"
    if value > review:
        return "review"
    return None


def distribution(profiles: Mapping[str, Mapping[str, Any]], training: Mapping[str, Any] | None,
                 t: QualityThresholds) -> tuple[Scores, list[Reason]]:
    """Each modality's intensity profile inside the brain against the training cases' profile."""
    if not training:
        return ({"available": False, "why": "the bundle records no training intensity profile "
                 "(exported before this signal existed, or without its training folder)"}, [])
    scores: Scores = {"available": True, "distance": {}}
    reasons: list[Reason] = []
    for modality, prof in profiles.items():
        ref = training.get(modality)
        if not ref:
            continue
        d = profile_distance(prof, ref)
        spread = float(ref.get("case_distance_max", 0.0)) * t.distribution_spread_factor
        review, reject = max(t.distribution_review, spread), max(t.distribution_reject, 2 * spread)
        scores["distance"][modality] = round(d, 4)
        scores.setdefault("review_above", {})[modality] = round(review, 4)
        grade = _grade(d, review, reject) if np.isfinite(d) else "review"
        if grade:
            reasons.append(Reason(
                f"intensity_{modality}", grade,
                f"{modality.upper()} intensities inside the brain differ from the training scans "
                f"(distance {d:.2f}, review above {review:.2f}): noise, artefact, a strong bias "
                "field or a series of another contrast?"))
    return scores, reasons


#: What a region fainter than every training tumour means: reason code and the sentence's end.
_UNSUPPORTED = {
    "WT": ("faint_tumour", "segmented tumour", "the image does not support it (a false positive "
           "on a healthy brain?)"),
    "ET": ("faint_enhancement", "segmented enhancing tumour", "it does not enhance (contrast not "
           "given or failed? the T1CE series a plain T1?)"),
}


def tumour_support(contrast: Mapping[str, Mapping[str, float | None]],
                   training: Mapping[str, Any] | None,
                   t: QualityThresholds) -> tuple[Scores, list[Reason]]:
    """Whether the image shows what the network predicts: per region (whole tumour, enhancing
    tumour) and modality, how far the predicted region stands out from the normal brain
    (:func:`glioedge.intensity_profile.region_contrasts`), against the training tumours' (the
    manifest's ``tumour_contrast``). Judged only where every training tumour stood out by at
    least ``tumour_contrast_min_training`` (the whole tumour on FLAIR, its hyperintensity; the
    enhancing tumour on T1CE): a region fainter than ``tumour_contrast_factor`` × the faintest
    training tumour is one the image does not show."""
    scores: Scores = {"contrast": {r: dict(v) for r, v in contrast.items()}}
    if not training:
        scores.update(available=False, why="the bundle records no training tumour contrast "
                      "(exported before it was recorded, or without its training cases)")
        return scores, []
    scores["available"] = True
    reasons: list[Reason] = []
    for region, per_modality in contrast.items():
        if region not in _UNSUPPORTED:
            continue
        code, what, meaning = _UNSUPPORTED[region]
        faint = []
        for modality, value in per_modality.items():
            faintest = ((training.get(region) or {}).get(modality) or {}).get("min")
            if value is None or faintest is None or faintest < t.tumour_contrast_min_training:
                continue
            below = t.tumour_contrast_factor * float(faintest)
            scores.setdefault("review_below", {}).setdefault(region, {})[modality] = round(below, 4)
            if value < below:
                faint.append(f"{modality.upper()} {value:.1f} σ, every training case ≥ {faintest:.1f} σ")
        if faint:
            reasons.append(Reason(code, "review", f"the {what} barely stands out from the brain "
                                  f"({'; '.join(faint)}): {meaning}"))
    return scores, reasons


def _face_fraction(mask: np.ndarray) -> tuple[float, str]:
    """Largest brain-mask area on a face of the volume relative to the brain's largest
    cross-section parallel to that face, and which face."""
    worst, where = 0.0, ""
    for axis in range(3):
        areas = mask.sum(axis=tuple(a for a in range(3) if a != axis))
        biggest = float(areas.max()) if areas.size else 0.0
        if biggest <= 0:
            continue
        for end, area in (("first", areas[0]), ("last", areas[-1])):
            frac = float(area) / biggest
            if frac > worst:
                worst, where = frac, f"{end} plane of axis {'ijk'[axis]}"
    return worst, where


def coverage(brain_mask: np.ndarray, spacing: Sequence[float], training_max_spacing: float | None,
             t: QualityThresholds, images: Mapping[str, np.ndarray] | None = None,
             ) -> tuple[Scores, list[Reason]]:
    """The brain cut off at the edge of the field of view, slices thicker than training's, and a
    series that covers only part of the brain (``images`` on the brain mask's grid: a series
    resampled onto the reference grid is 0 outside its own field of view)."""
    mask = np.asarray(brain_mask, bool)
    frac, where = _face_fraction(mask)
    thickness = float(max(spacing))
    scores: Scores = {"border_fraction": round(frac, 4), "border_face": where,
                      "slice_thickness_mm": round(thickness, 3),
                      "training_max_spacing_mm": training_max_spacing}
    reasons: list[Reason] = []
    n = int(mask.sum())
    for modality, image in (images or {}).items():
        missing = float((np.asarray(image)[mask] == 0).sum()) / n if n else 0.0
        scores.setdefault("uncovered_fraction", {})[modality] = round(missing, 4)
        if grade := _grade(missing, t.uncovered_review, t.uncovered_reject):
            reasons.append(Reason(f"partial_{modality}", grade,
                                  f"the {modality.upper()} series covers only part of the brain "
                                  f"({missing:.0%} of it has no {modality.upper()} signal)"))
    if grade := _grade(frac, t.border_review, t.border_reject):
        reasons.append(Reason("brain_cut_off", grade,
                              f"the brain reaches the edge of the scanned volume ({where}, "
                              f"{frac:.0%} of its cross-section): part of the brain, and possibly "
                              "of the tumour, is outside the field of view"))
    if training_max_spacing:
        review = t.slice_thickness_factor * training_max_spacing
        reject = max(t.slice_thickness_reject_mm, 2 * review)
    else:
        review, reject = t.slice_thickness_review_mm, t.slice_thickness_reject_mm
    if grade := _grade(thickness, review, reject):
        reasons.append(Reason("thick_slices", grade,
                              f"voxels are {thickness:.1f} mm thick, beyond what the model was "
                              f"trained for (review above {review:.1f} mm): small lesions and "
                              "borders are uncertain"))
    return scores, reasons


def entropy_stats(probs: np.ndarray, labels: np.ndarray) -> Scores:
    """Normalised predictive entropy (0..1) of softmax ``probs`` ``(K, i, j, k)`` inside the
    predicted tumour (``labels > 0``)."""
    tumour = np.asarray(labels) > 0
    n = int(tumour.sum())
    if n == 0:
        return {"tumour_voxels": 0}
    idx = np.flatnonzero(tumour)
    idx = idx[:: idx.size // _MAX_ENTROPY_VOXELS + 1]  # a regular subsample of large tumours
    p = np.clip(probs.reshape(probs.shape[0], -1)[:, idx].astype(np.float32, copy=False), 1e-7, 1.0)
    ent = -(p * np.log(p)).sum(axis=0) / np.log(probs.shape[0])
    return {"tumour_voxels": n, "entropy_mean": round(float(ent.mean()), 4),
            "entropy_p90": round(float(np.percentile(ent, 90)), 4)}


#: What ``mirror_disagreement.mean`` is (the report says it beside the number).
MIRROR_MEASURE = ("share of the mirrored predictions whose label differs from the label of their "
                  "average, blended over the windows, mean inside the predicted tumour")


def disagreement_stats(disagreement: np.ndarray, labels: np.ndarray) -> Scores:
    """Mean and 90th percentile of the sliding window's blended mirror disagreement
    (:func:`glioedge.data.sliding_window.mirror_disagreement`, 0..1) inside the predicted tumour
    (``labels > 0``, same grid: the network's)."""
    tumour = np.asarray(labels) > 0
    n = int(tumour.sum())
    if n == 0:
        return {"available": True, "tumour_voxels": 0}
    d = np.asarray(disagreement)[tumour]
    return {"available": True, "measure": MIRROR_MEASURE, "tumour_voxels": n,
            "mean": round(float(d.mean()), 4), "p90": round(float(np.percentile(d, 90)), 4)}


def uncertainty(stats: Mapping[str, Any], mirror: bool, t: QualityThresholds,
                disagreement: Mapping[str, Any] | None = None) -> tuple[Scores, list[Reason]]:
    """Predictive entropy inside the predicted tumour, and the disagreement between mirrored
    predictions (:func:`disagreement_stats`) when mirroring was on; without it, what is lost."""
    scores: Scores = dict(stats)
    reasons: list[Reason] = []
    if mirror and disagreement:
        scores["mirror_disagreement"] = dict(disagreement)
        value = disagreement.get("mean")
        if value is not None and (grade := _grade(float(value), t.mirror_disagreement_review,
                                                  t.mirror_disagreement_reject)):
            reasons.append(Reason("mirror_disagreement", grade,
                                  f"mirrored views of the scan disagree on the tumour labels "
                                  f"({value:.0%} of them on average inside the tumour, review above "
                                  f"{t.mirror_disagreement_review:.0%}): the model is unsure"))
    else:
        scores["mirror_disagreement"] = {
            "available": False,
            "why": ("mirroring is on, but the back-end's sliding window did not measure the "
                    "disagreement of the mirrored predictions") if mirror
            else ("mirroring is off (the default on a CPU-only box): the disagreement between "
                  "mirrored predictions, a second uncertainty estimate, is not available; the "
                  "entropy below comes from one prediction")}
    mean = stats.get("entropy_mean")
    if mean is not None and (grade := _grade(float(mean), t.entropy_review, t.entropy_reject)):
        reasons.append(Reason("uncertain", grade,
                              f"the model is unsure of its tumour labels (mean entropy {mean:.2f}, "
                              f"review above {t.entropy_review:.2f})"))
    return scores, reasons


def anatomy(labels: np.ndarray, brain_mask: np.ndarray, spacing: Sequence[float],
            t: QualityThresholds, outside_before: float | None = None) -> tuple[Scores, list[Reason]]:
    """Tumour outside the brain, enhancement without a tumour around it, a core without enhancement,
    speckle, implausible size."""
    labels = np.asarray(labels)
    tumour = labels > 0
    n = int(tumour.sum())
    vox_ml = float(np.prod(np.asarray(spacing, float))) / 1000.0
    brain_ml = float(np.asarray(brain_mask, bool).sum()) * vox_ml
    if n == 0:
        scores: Scores = {"tumour_voxels": 0, "brain_ml": round(brain_ml, 2)}
        if not outside_before:
            return scores, []
        # every voxel the network called tumour was outside the brain, and was removed
        scores["outside_brain_fraction"] = round(float(outside_before), 4)
        return scores, [Reason("tumour_outside_brain", "review",
                               f"the network put all of its tumour ({outside_before:.0%}) outside "
                               "the brain mask (removed): the empty result is not to be trusted")]
    outside = float((tumour & ~np.asarray(brain_mask, bool)).sum()) / n
    if outside_before is not None:  # post-processing removed it: judge the network's own output
        outside = max(outside, float(outside_before))
    box = ndimage.find_objects(tumour.astype(np.uint8))[0]  # label only the tumour's box
    tumour, labels = tumour[box], labels[box]
    components, count = ndimage.label(tumour, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(components.ravel())[1:] * vox_ml
    big = int((sizes >= t.component_min_ml).sum())
    small_fraction = float((sizes < t.component_min_ml).mean()) if count else 0.0
    # Enhancement is inside the core: an ET voxel in a component with neither NCR nor ED is isolated.
    et = labels == ET
    isolated = 0.0
    if et.any():
        other = np.bincount(components[tumour & ~et], minlength=count + 1)
        isolated = float((other[components[et]] == 0).mean())
    wt_ml = n * vox_ml
    wt_brain = wt_ml / brain_ml if brain_ml > 0 else float("inf")
    # A glioma's whole tumour holds a core (necrosis / non-enhancing tumour, enhancing tumour):
    # oedema with almost none is a core the model did not see (contrast failed, a post-operative
    # cavity) or a lesion it was not trained for.
    core = np.isin(labels[tumour], CORE)
    core_fraction = float(core.mean())
    core_ml = float(core.sum()) * vox_ml
    # A glioblastoma's core enhances (the rim): a core of necrosis alone is a contrast that was not
    # given or failed (the T1CE is a plain T1) — or a non-enhancing glioma; either way, look.
    enhancing = float((labels[tumour] == ET).sum()) / float(core.sum()) if core.any() else None
    scores = {"outside_brain_fraction": round(outside, 4), "components": int(count),
              "components_large": big, "small_component_fraction": round(small_fraction, 4),
              "isolated_et_fraction": round(isolated, 4), "wt_ml": round(wt_ml, 3),
              "brain_ml": round(brain_ml, 2), "wt_brain_fraction": round(wt_brain, 4),
              "core_fraction": round(core_fraction, 4), "core_ml": round(core_ml, 3),
              "enhancing_fraction": None if enhancing is None else round(enhancing, 4)}
    reasons: list[Reason] = []
    if grade := _grade(outside, t.outside_brain_review, t.outside_brain_reject):
        reasons.append(Reason("tumour_outside_brain", grade,
                              f"the network put {outside:.0%} of its tumour outside the brain mask"
                              + (" (removed)" if outside_before else "")))
    if isolated > t.isolated_et_review:
        reasons.append(Reason("isolated_enhancement", "review",
                              f"{isolated:.0%} of the enhancing tumour has no necrosis or oedema "
                              "around it (vessels, contrast in the wrong series?)"))
    if big >= t.components_review:
        reasons.append(Reason("many_components", "review",
                              f"{big} separate tumour regions of at least {t.component_min_ml:g} mL"))
    if count >= 5 and small_fraction > t.small_fraction_review:
        reasons.append(Reason("speckle", "review",
                              f"{small_fraction:.0%} of {count} tumour regions are smaller than "
                              f"{t.component_min_ml:g} mL (scattered false positives?)"))
    if not core.any() and wt_ml < t.core_min_wt_ml and t.core_fraction_review > 0:
        # Too small for the core fraction to mean much, but with no core voxel at all it is not a
        # glioma's segmentation: the scattered "oedema" a model draws on a brain without a tumour.
        # core_fraction_review = 0 turns off both parts of the rule.
        reasons.append(Reason("no_tumour_core", "review",
                              f"the {wt_ml:.2g} mL tumour is oedema alone, without any tumour core: "
                              "not a glioma's segmentation (false positives on a brain without a "
                              "tumour?) or a core the model missed (contrast not given or failed?)"))
    elif wt_ml >= t.core_min_wt_ml and core_fraction < t.core_fraction_review:
        reasons.append(Reason("no_tumour_core", "review",
                              f"the tumour core (necrosis and enhancing tumour) is only "
                              f"{core_fraction:.1%} of the {wt_ml:.0f} mL whole tumour: oedema "
                              "without a core. A core the model missed (contrast not given or "
                              "failed? a post-operative cavity?) or a lesion it was not trained for"))
    if enhancing is not None and core_ml >= t.enhancing_min_core_ml \
            and enhancing < t.enhancing_fraction_review:
        reasons.append(Reason("little_enhancement", "review",
                              f"only {enhancing:.0%} of the {core_ml:.1f} mL tumour core enhances "
                              f"(review below {t.enhancing_fraction_review:.0%}): was contrast given, "
                              "and is the T1CE series post-contrast? A non-enhancing glioma reads "
                              "the same"))
    if wt_brain > t.wt_brain_fraction_reject or wt_ml > t.wt_max_ml_reject:
        reasons.append(Reason("implausible_volume", "reject",
                              f"the whole tumour ({wt_ml:.0f} mL) is {wt_brain:.0%} of the brain "
                              "mask: not a plausible segmentation"))
    return scores, reasons
