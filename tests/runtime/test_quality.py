"""The per-case quality verdict (issue 19): each signal on small synthetic cases, the verdict, the
thresholds and the manifest block. numpy only (no bundle): the Segmenter's use is tested in
test_quality_segmenter.py."""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from typing import Any

import numpy as np
import pytest

from glioedge.data.preprocess import PreprocessParams, preprocess
from glioedge.errors import ModelError
from glioedge.export.quality_block import add_contrasts, contrast_record
from glioedge.intensity_profile import merge_profiles, profile, profile_distance, region_contrasts
from glioedge.runtime.quality import NO_TUMOUR, QualityThresholds, assess, entropy_stats
from glioedge.synth.cohort import SyntheticConfig, make_case
from glioedge.vocabulary import ET

CFG = SyntheticConfig(shape=(96, 96, 64), spacing=(2.0, 2.0, 2.0))
PARAMS = PreprocessParams(modalities=("flair", "t1ce"), target_spacing=(2.0, 2.0, 2.0))
SPACING = (2.0, 2.0, 2.0)


def _profiles(images: dict[str, np.ndarray], affine: np.ndarray, mask: np.ndarray | None = None,
              label: np.ndarray | None = None):
    """Profiles of the tumour-free brain (``label`` plays the network's prediction)."""
    case = preprocess(images, affine, PARAMS, brain_mask=mask, label=label)
    normal = case.mask if case.label is None else case.mask & (case.label == 0)
    return {m: profile(case.data[c], normal) for c, m in enumerate(PARAMS.modalities)}


@cache
def _training_block() -> dict[str, Any]:
    """The manifest block of five training cases (what export records)."""
    cases = [make_case(seed, CFG) for seed in range(100, 105)]
    per = [_profiles(c.images, c.affine, label=c.label) for c in cases]
    contrast: dict[str, dict[str, list[float]]] = {}
    for c in cases:
        add_contrasts(contrast, _contrast(c.images, c.affine, None, c.label))
    return {"intensity": {m: merge_profiles([p[m] for p in per]) for m in PARAMS.modalities},
            "tumour_contrast": contrast_record(contrast), "training_max_spacing_mm": 2.0}


def _contrast(images: dict[str, np.ndarray], affine: np.ndarray, mask: np.ndarray | None,
              label: np.ndarray) -> dict[str, dict[str, float | None]]:
    """How far ``label``'s tumour regions stand out in the network input (as the runtime measures)."""
    case = preprocess(images, affine, PARAMS, brain_mask=mask, label=label)
    return region_contrasts(case.data, PARAMS.modalities, case.mask, case.label)


def _case(seed: int = 7):
    case = make_case(seed, CFG)
    images = {str(getattr(k, "value", k)): v for k, v in case.images.items()}
    return images, case.affine, case.label, images["t1ce"] > 0


def _confident(labels: np.ndarray) -> dict[str, Any]:
    probs = np.full((4, *labels.shape), 0.01, np.float32)
    np.put_along_axis(probs, labels[None].astype(np.int64), 0.97, axis=0)
    return entropy_stats(probs, labels)


def _assess(images, affine, labels, mask, *, block=None, spacing=SPACING, entropy=None):
    same_grid = labels.shape == mask.shape
    return assess(labels=labels, brain_mask=mask, spacing=spacing,
                  profiles=_profiles(images, affine, mask, labels if same_grid else None),
                  entropy=entropy if entropy is not None else _confident(labels), mirror=False,
                  block=_training_block() if block is None else block,
                  contrast=_contrast(images, affine, mask, labels) if same_grid else None)


def test_clean_held_out_case_is_ok() -> None:
    images, affine, labels, mask = _case()
    q = _assess(images, affine, labels, mask)
    assert q.verdict == "ok", q.to_dict()
    assert q.finding == "tumour"
    assert set(q.scores) == {"distribution", "coverage", "uncertainty", "anatomy", "support"}
    dist = q.scores["distribution"]
    assert all(d < dist["review_above"][m] for m, d in dist["distance"].items())


def test_intensity_scale_is_normalised_away() -> None:
    images, affine, _, mask = _case()
    a = _profiles(images, affine, mask)
    b = _profiles({k: v * 10 for k, v in images.items()}, affine, mask)
    assert profile_distance(a["t1ce"], b["t1ce"]) < 1e-3


@pytest.mark.parametrize("perturbation", ["noise", "bias", "flair_is_t2"])
def test_distribution_flags_perturbed_inputs(perturbation: str) -> None:
    images, affine, labels, mask = _case()
    rng = np.random.default_rng(0)
    if perturbation == "noise":  # heavy Rician noise
        def rician(v: np.ndarray) -> np.ndarray:
            s = 0.3 * np.median(v[mask])
            return np.where(mask, np.hypot(v + rng.normal(0, s, v.shape), rng.normal(0, s, v.shape)), 0)
        images = {k: rician(v) for k, v in images.items()}
    elif perturbation == "bias":  # a strong bias field
        x = np.linspace(-1, 1, mask.shape[0])[:, None, None]
        images = {k: v * np.exp(0.8 * x) for k, v in images.items()}
    else:  # a T2 series accepted as the FLAIR
        images = {**images, "flair": {str(getattr(k, "value", k)): v for k, v in
                                      make_case(7, CFG).images.items()}["t2"]}
    q = _assess(images, affine, labels, mask)
    assert q.verdict in ("review", "reject"), q.to_dict()
    assert any(r.code.startswith("intensity_") for r in q.reasons)


def test_without_training_profile_the_signal_says_not_available() -> None:
    images, affine, labels, mask = _case()
    q = _assess(images, affine, labels, mask, block={})
    assert q.scores["distribution"]["available"] is False
    assert "no training intensity profile" in q.scores["distribution"]["why"]
    assert [r.code for r in q.reasons] == ["no_training_profile"] and q.verdict == "ok"


def test_brain_cut_at_the_top_is_flagged() -> None:
    images, affine, labels, mask = _case()
    ks = np.where(mask.any((0, 1)))[0]
    top = ks[0] + int(0.7 * (ks[-1] - ks[0]))  # the top 30 % of the brain outside the volume
    cut = {k: v[:, :, :top] for k, v in images.items()}
    q = _assess(cut, affine, labels[:, :, :top], mask[:, :, :top])
    codes = {r.code: r.severity for r in q.reasons}
    assert codes.get("brain_cut_off") == "reject", q.to_dict()
    assert q.verdict == "reject"
    assert q.scores["coverage"]["border_face"] == "last plane of axis k"


def test_series_covering_part_of_the_brain_is_flagged() -> None:
    images, affine, labels, mask = _case()
    images = {m: images[m] for m in PARAMS.modalities}
    kwargs = {"labels": labels, "brain_mask": mask, "spacing": SPACING, "mirror": False,
              "profiles": _profiles(images, affine, mask, labels), "entropy": _confident(labels),
              "block": _training_block()}
    q = assess(**kwargs, images=images)
    assert q.scores["coverage"]["uncovered_fraction"] == {"flair": 0.0, "t1ce": 0.0} and q.verdict == "ok"
    ks = np.where(mask.any((0, 1)))[0]
    partial = {**images, "flair": images["flair"].copy()}
    partial["flair"][:, :, ks[0] + (ks[-1] - ks[0]) // 2:] = 0  # a FLAIR slab over the lower half only
    q = assess(**kwargs, images=partial)
    assert {r.code: r.severity for r in q.reasons}.get("partial_flair") == "reject", q.to_dict()


def test_thick_slices_beyond_training_are_flagged() -> None:
    images, affine, labels, mask = _case()
    q = _assess(images, affine, labels, mask, spacing=(2.0, 2.0, 7.0))
    assert {r.code for r in q.reasons} >= {"thick_slices"} and q.verdict == "reject"
    q = _assess(images, affine, labels, mask, spacing=(2.0, 2.0, 3.5))
    assert {r.code: r.severity for r in q.reasons}["thick_slices"] == "review"


def test_uncertain_prediction_is_flagged() -> None:
    images, affine, labels, mask = _case()
    uniform = np.full((4, *labels.shape), 0.25, np.float32)
    q = _assess(images, affine, labels, mask, entropy=entropy_stats(uniform, labels))
    assert q.scores["uncertainty"]["entropy_mean"] == pytest.approx(1.0, abs=1e-3)
    assert {r.code: r.severity for r in q.reasons}["uncertain"] == "reject"
    assert "mirroring is off" in q.scores["uncertainty"]["mirror_disagreement"]["why"]


def test_anatomy_signals() -> None:
    images, affine, labels, mask = _case()
    outside = labels.copy()
    outside[:4, :4, :4] = 2  # a tumour in the corner, far outside the brain
    outside[:, :, :] = np.where(mask, 0, outside)  # and none inside
    codes = {r.code for r in _assess(images, affine, outside, mask).reasons}
    assert "tumour_outside_brain" in codes
    isolated = labels.copy()
    isolated[isolated > 0] = 0
    isolated[30:33, 30:33, 20:23] = ET  # enhancement with no core or oedema around it
    assert "isolated_enhancement" in {r.code for r in _assess(images, affine, isolated, mask).reasons}
    speckle = labels.copy()
    speckle[mask & (np.random.default_rng(1).random(mask.shape) < 0.002)] = 2
    assert "speckle" in {r.code for r in _assess(images, affine, speckle, mask).reasons}
    huge = np.where(mask, 2, 0).astype(np.uint8)
    q = _assess(images, affine, huge, mask)
    assert "implausible_volume" in {r.code for r in q.reasons} and q.verdict == "reject"


def test_empty_segmentation_is_no_tumour_found_not_a_failure() -> None:
    case = make_case(7, replace(CFG, n_tumours=0))  # a healthy brain
    images = {str(getattr(k, "value", k)): v for k, v in case.images.items()}
    mask = images["t1ce"] > 0
    empty = np.zeros(mask.shape, np.uint8)
    q = _assess(images, case.affine, empty, mask,
                entropy=entropy_stats(np.zeros((4, *empty.shape)), empty))
    assert q.finding == NO_TUMOUR and q.verdict == "ok", q.to_dict()
    assert [r.code for r in q.reasons] == ["no_tumour"]
    assert q.summary() == "OK: no tumour found"


def test_empty_segmentation_of_a_brain_with_tumour_is_flagged() -> None:
    """A missed tumour stays in the "tumour-free" brain whose intensities are compared."""
    images, affine, labels, mask = _case()
    empty = np.zeros_like(labels)
    q = _assess(images, affine, empty, mask, entropy=entropy_stats(np.zeros((4, *empty.shape)), empty))
    assert q.finding == NO_TUMOUR and q.verdict != "ok"
    assert any(r.code.startswith("intensity_") for r in q.reasons)


def test_thresholds_from_the_manifest_block() -> None:
    t = QualityThresholds.from_manifest({"thresholds": {"entropy_review": 0.01, "components_review": 2}})
    assert t.entropy_review == 0.01 and t.components_review == 2 and t.border_review == 0.15
    with pytest.raises(ModelError, match="unknown keys"):
        QualityThresholds.from_manifest({"thresholds": {"entropy": 1}})
    images, affine, labels, mask = _case()
    block = {**_training_block(), "thresholds": {"entropy_review": 0.0001}}
    q = _assess(images, affine, labels, mask, block=block)
    assert "uncertain" in {r.code for r in q.reasons} and q.thresholds_source == "bundle"


def test_mirror_disagreement_inside_the_tumour_is_scored_and_flagged() -> None:
    """With mirroring the window's disagreement (0..1 per voxel) is averaged inside the predicted
    tumour; above the threshold the verdict says ``mirror_disagreement``."""
    from glioedge.runtime.quality import disagreement_stats

    images, affine, labels, mask = _case()
    t = QualityThresholds()
    tumour = labels > 0
    calm = np.where(tumour, 0.02, 0.9).astype(np.float32)  # disagreement outside does not count
    stats = disagreement_stats(calm, labels)
    assert stats["mean"] == pytest.approx(0.02, abs=1e-4) and stats["tumour_voxels"] == int(tumour.sum())
    q = assess(labels=labels, brain_mask=mask, spacing=SPACING,
               profiles=_profiles(images, affine, mask, labels), entropy=_confident(labels),
               mirror=True, block=_training_block(), disagreement=stats)
    assert q.verdict == "ok", q.to_dict()
    assert q.scores["uncertainty"]["mirror_disagreement"]["available"] is True
    for value, severity in ((t.mirror_disagreement_review + 0.01, "review"),
                            (t.mirror_disagreement_reject + 0.01, "reject")):
        shaky = disagreement_stats(np.where(tumour, value, 0.0).astype(np.float32), labels)
        q = assess(labels=labels, brain_mask=mask, spacing=SPACING,
                   profiles=_profiles(images, affine, mask, labels), entropy=_confident(labels),
                   mirror=True, block=_training_block(), disagreement=shaky)
        assert {r.code: r.severity for r in q.reasons}.get("mirror_disagreement") == severity, q.to_dict()
        assert q.verdict == severity
    assert disagreement_stats(calm, np.zeros_like(labels)) == {"available": True, "tumour_voxels": 0}


def test_calibration_sets_the_mirror_disagreement_threshold_only_from_mirrored_cases() -> None:
    from glioedge.runtime.quality.calibrate import thresholds_from_scores

    def scores(mirror: float | None) -> dict[str, Any]:
        md = {"available": False} if mirror is None else {"available": True, "mean": mirror}
        return {"distribution": {"distance": {"flair": 0.05}}, "coverage": {"border_fraction": 0.0},
                "uncertainty": {"entropy_mean": 0.1, "mirror_disagreement": md},
                "anatomy": {"outside_brain_fraction": 0.0, "components": 3, "components_large": 2,
                            "small_component_fraction": 0.3}}

    base = QualityThresholds()
    t = thresholds_from_scores([scores(v) for v in (0.01, 0.03, 0.04)], 0.0, base)
    assert t.mirror_disagreement_review == pytest.approx(0.04)
    assert t.mirror_disagreement_reject == base.mirror_disagreement_reject  # at least the default
    plain = thresholds_from_scores([scores(None)] * 3, 0.0, base)
    assert plain.mirror_disagreement_review == base.mirror_disagreement_review


def test_calibration_bounds_the_share_of_clean_cases_flagged_not_each_signals() -> None:
    """``false_alarm`` is per case: signals whose outliers are different cases must not add up
    to more flagged cases than asked for (a per-signal quantile flagged one case per signal)."""
    from glioedge.runtime.quality.calibrate import thresholds_from_scores

    rng = np.random.default_rng(0)
    n = 40
    flair, t1ce, entropy = (rng.uniform(0.02, 0.2, n) for _ in range(3))

    def scores(i: int) -> dict[str, Any]:
        return {"distribution": {"distance": {"flair": flair[i], "t1ce": t1ce[i]}},
                "coverage": {"border_fraction": 0.0}, "uncertainty": {"entropy_mean": entropy[i]},
                "anatomy": {"outside_brain_fraction": 0.0, "components": 1, "components_large": 1}}

    t = thresholds_from_scores([scores(i) for i in range(n)], 0.1, QualityThresholds())
    flagged = [i for i in range(n) if max(flair[i], t1ce[i]) > t.distribution_review
               or entropy[i] > t.entropy_review]
    assert len(flagged) <= 0.1 * n
    # each signal alone, at the per-signal 90 % quantile, would have flagged about 4 cases each
    assert t.distribution_review > np.percentile(np.r_[flair, t1ce], 90)
    assert t.entropy_review > np.percentile(entropy, 90)
    # six signals (two modalities' distances, entropy, border, components, outside the brain):
    # a 10 % per-case rate needs n >= 6 / 0.1 - 1 held-out cases before it can hold at all
    from glioedge.runtime.quality.calibrate import cases_needed

    assert cases_needed([scores(i) for i in range(n)], 0.1) == 59


def test_calibration_raises_the_component_thresholds_to_the_models_clean_normal() -> None:
    """A model that scatters small false positives on clean cases: its clean component counts
    become the threshold (only ever raised from the default, never lowered)."""
    from glioedge.runtime.quality.calibrate import thresholds_from_scores

    def scores(large: int, small_fraction: float) -> dict[str, Any]:
        return {"distribution": {"distance": {}}, "coverage": {"border_fraction": 0.0},
                "uncertainty": {"entropy_mean": 0.1},
                "anatomy": {"outside_brain_fraction": 0.0, "components": 12, "components_large": large,
                            "small_component_fraction": small_fraction}}

    base = QualityThresholds()
    t = thresholds_from_scores([scores(n, f) for n, f in ((3, 0.5), (8, 0.85), (9, 0.9))], 0.0, base)
    assert t.components_review == 10 and t.small_fraction_review == pytest.approx(0.9)
    quiet = thresholds_from_scores([scores(1, 0.2)] * 3, 0.0, base)
    assert quiet.components_review == base.components_review
    assert quiet.small_fraction_review == base.small_fraction_review


def test_oedema_without_a_tumour_core_is_flagged() -> None:
    """A whole tumour that is nearly all oedema (the core relabelled: what a model gives when
    the contrast failed or the core is a fluid cavity) is reviewed; the truth is not, nor is a
    small lesion."""
    from glioedge.vocabulary import ED, NCR

    images, affine, labels, mask = _case()
    q = _assess(images, affine, labels, mask)
    assert q.scores["anatomy"]["core_fraction"] > QualityThresholds().core_fraction_review
    assert "no_tumour_core" not in {r.code for r in q.reasons}
    oedema = np.where(labels > 0, ED, 0).astype(np.uint8)
    oedema.ravel()[np.flatnonzero(labels == NCR)[:5]] = NCR  # a trace of core, far below 5 %
    q = _assess(images, affine, oedema, mask)
    assert {r.code: r.severity for r in q.reasons}.get("no_tumour_core") == "review", q.to_dict()
    assert q.scores["anatomy"]["core_fraction"] < 0.01
    small = np.zeros_like(labels)
    small[40:44, 40:44, 30:34] = ED  # 64 voxels of 8 µL: 0.5 mL, below core_min_wt_ml
    small[42, 42, 32] = NCR  # a core of 1.6 %: too small a tumour to judge its fraction
    assert "no_tumour_core" not in {r.code for r in _assess(images, affine, small, mask).reasons}


def test_oedema_alone_is_flagged_however_small() -> None:
    """A small "tumour" with no core voxel at all is not a glioma's segmentation: it is what a
    model draws on a brain without a tumour (scattered oedema), so it is reviewed, not reported
    as a trusted tumour (an empty one stays "no tumour found", ok: the test above)."""
    from glioedge.vocabulary import ED

    images, affine, labels, mask = _case()
    specks = np.zeros_like(labels)
    brain = np.flatnonzero(mask.astype(bool) & (labels == 0))
    specks.ravel()[brain[:: len(brain) // 3][:3]] = ED  # three one-voxel specks in the brain
    q = _assess(images, affine, specks, mask)
    reasons = {r.code: r for r in q.reasons}
    assert reasons["no_tumour_core"].severity == "review", q.to_dict()
    assert "without any tumour core" in reasons["no_tumour_core"].message
    # core_fraction_review = 0 turns the whole rule off, this part included
    from glioedge.runtime.quality.signals import anatomy

    off = replace(QualityThresholds(), core_fraction_review=0.0)
    _, off_reasons = anatomy(specks, mask, SPACING, off)
    assert "no_tumour_core" not in {r.code for r in off_reasons}
    _, on_reasons = anatomy(specks, mask, SPACING, QualityThresholds())
    assert "no_tumour_core" in {r.code for r in on_reasons}


def test_calibration_keeps_the_core_fraction_rule() -> None:
    """The tumour-core fraction is a rule of anatomy, not a noise level: held-out cases whose
    (wrong) outputs are oedema without a core must not lower it."""
    from glioedge.runtime.quality.calibrate import thresholds_from_scores

    def scores(core: float) -> dict[str, Any]:
        return {"distribution": {"distance": {}}, "coverage": {"border_fraction": 0.0},
                "uncertainty": {"entropy_mean": 0.1},
                "anatomy": {"outside_brain_fraction": 0.0, "components": 1, "components_large": 1,
                            "small_component_fraction": 0.0, "wt_ml": 50.0, "core_fraction": core}}

    base = QualityThresholds()
    t = thresholds_from_scores([scores(c) for c in (0.01, 0.2, 0.3)], 0.0, base)
    assert t.core_fraction_review == base.core_fraction_review


def test_a_tumour_core_without_enhancement_is_flagged() -> None:
    """A core the model labels necrosis throughout (what it makes of a T1CE whose contrast failed)
    is reviewed as ``little_enhancement``; the truth's core, which enhances, is not, nor is a
    core too small to judge (a false core on a healthy brain)."""
    from glioedge.vocabulary import NCR

    images, affine, labels, mask = _case()
    q = _assess(images, affine, labels, mask)
    a = q.scores["anatomy"]
    assert a["core_ml"] >= QualityThresholds().enhancing_min_core_ml
    assert a["enhancing_fraction"] > QualityThresholds().enhancing_fraction_review
    assert "little_enhancement" not in {r.code for r in q.reasons}
    unenhanced = np.where(labels == ET, NCR, labels).astype(np.uint8)
    q = _assess(images, affine, unenhanced, mask)
    assert q.scores["anatomy"]["enhancing_fraction"] == 0.0
    assert {r.code: r.severity for r in q.reasons}.get("little_enhancement") == "review", q.to_dict()
    small = np.zeros_like(labels)
    small[40:44, 40:44, 30:34] = NCR  # 0.5 mL of core, below enhancing_min_core_ml
    q = _assess(images, affine, small, mask)
    assert q.scores["anatomy"]["enhancing_fraction"] == 0.0
    assert "little_enhancement" not in {r.code for r in q.reasons}


def test_calibration_keeps_the_enhancing_share_rule() -> None:
    """Like the core fraction: held-out healthy brains whose false "cores" do not enhance must not
    lower the bound to nothing."""
    from glioedge.runtime.quality.calibrate import thresholds_from_scores

    def scores(enhancing: float) -> dict[str, Any]:
        return {"distribution": {"distance": {}}, "coverage": {"border_fraction": 0.0},
                "uncertainty": {"entropy_mean": 0.1},
                "anatomy": {"outside_brain_fraction": 0.0, "components": 1, "components_large": 1,
                            "small_component_fraction": 0.0, "wt_ml": 80.0, "core_fraction": 0.3,
                            "core_ml": 20.0, "enhancing_fraction": enhancing}}

    base = QualityThresholds()
    t = thresholds_from_scores([scores(e) for e in (0.0, 0.4, 0.5, 0.6)], 0.05, base)
    assert t.enhancing_fraction_review == base.enhancing_fraction_review > 0


def test_a_tumour_the_image_does_not_show_is_flagged() -> None:
    """A "tumour" drawn on normal tissue of a healthy brain (what a model hallucinates there) does
    not stand out on FLAIR as every training tumour does: ``faint_tumour``; the true tumour of a
    case is not flagged; a bundle without the training record says the signal is not available."""
    images, affine, labels, mask = _case()
    q = _assess(images, affine, labels, mask)
    support = q.scores["support"]
    assert support["available"]
    assert support["contrast"]["WT"]["flair"] > support["review_below"]["WT"]["flair"]
    assert "t1ce" not in support["review_below"]["WT"]  # training oedema does not stand out on T1CE
    assert not {"faint_tumour", "faint_enhancement"} & {r.code for r in q.reasons}
    healthy = make_case(7, replace(CFG, n_tumours=0))
    h_images = {str(getattr(k, "value", k)): v for k, v in healthy.images.items()}
    h_mask = h_images["t1ce"] > 0
    false = np.zeros(h_mask.shape, np.uint8)
    false[40:52, 40:52, 28:36] = 2  # 9 mL of "oedema" on normal-appearing brain
    false &= h_mask.astype(np.uint8) * 255
    q = _assess(h_images, healthy.affine, false, h_mask)
    support = q.scores["support"]
    assert support["contrast"]["WT"]["flair"] < support["review_below"]["WT"]["flair"]
    assert {r.code: r.severity for r in q.reasons}.get("faint_tumour") == "review", q.to_dict()
    block = {k: v for k, v in _training_block().items() if k != "tumour_contrast"}
    q = _assess(h_images, healthy.affine, false, h_mask, block=block)
    assert q.scores["support"]["available"] is False and "faint_tumour" not in {r.code for r in q.reasons}


def test_enhancing_tumour_that_does_not_enhance_is_flagged() -> None:
    """The same case's enhancing tumour on a T1CE whose contrast failed (the T1 in its place) is
    no brighter than the brain: ``faint_enhancement``; on the real T1CE it is not flagged."""
    images, affine, labels, mask = _case()
    q = _assess(images, affine, labels, mask)
    support = q.scores["support"]
    assert support["contrast"]["ET"]["t1ce"] > support["review_below"]["ET"]["t1ce"] > 0
    assert "faint_enhancement" not in {r.code for r in q.reasons}
    all_four = {str(getattr(k, "value", k)): v for k, v in make_case(7, CFG).images.items()}
    no_contrast = {**images, "t1ce": np.asarray(all_four["t1"])}
    q = _assess(no_contrast, affine, labels, mask)
    assert q.scores["support"]["contrast"]["ET"]["t1ce"] < q.scores["support"]["review_below"]["ET"]["t1ce"]
    assert {r.code: r.severity for r in q.reasons}.get("faint_enhancement") == "review", q.to_dict()


def test_tumour_removed_outside_the_brain_still_counts_against_the_case() -> None:
    """Post-processing removes the network's tumour outside the brain; the verdict judges the
    network's own output (the share it put outside), and a result emptied by the removal is not a
    trusted "no tumour found"."""
    from glioedge.runtime.quality.signals import anatomy

    images, affine, labels, mask = _case()
    t = QualityThresholds()
    inside = np.where(mask, labels, 0).astype(np.uint8)
    scores, reasons = anatomy(inside, mask, SPACING, t, outside_before=0.1)  # default review 0.05
    assert scores["outside_brain_fraction"] == 0.1
    reason = next(r for r in reasons if r.code == "tumour_outside_brain")
    assert reason.severity == "review" and "(removed)" in reason.message
    _, clean = anatomy(inside, mask, SPACING, t, outside_before=0.0)
    assert "tumour_outside_brain" not in {r.code for r in clean}
    empty = np.zeros_like(labels)
    q = assess(labels=empty, brain_mask=mask, spacing=SPACING, profiles=_profiles(images, affine, mask),
               entropy=entropy_stats(np.zeros((4, *empty.shape)), empty), mirror=False,
               block=_training_block(), outside_brain_fraction=1.0)
    assert q.finding == NO_TUMOUR and q.verdict == "review", q.to_dict()
    assert "tumour_outside_brain" in {r.code for r in q.reasons}
