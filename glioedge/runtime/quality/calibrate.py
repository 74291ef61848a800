"""``glioedge quality calibrate``: thresholds from held-out cases, stored in the bundle's manifest.

Each held-out study (a sub-folder of DICOM files) is segmented with the bundle. ``false_alarm``
is the share of clean *cases* allowed a ``review``, whichever signal raises it: with ``k``
calibrated signals (the intensity distance of each modality counting as one), each signal's
``review`` threshold is its ``1 - false_alarm / k`` quantile over the cases (Bonferroni: the
signals' false alarms add up at most to ``false_alarm``; a per-signal ``1 - false_alarm``
quantile let 25 % of clean cases be flagged at ``false_alarm = 0.05`` with 7 signals). With
few cases the quantile is close to the maximum. It sets the intensity distance, the entropy and
(calibrated with mirroring, as the site runs it) the mirrored predictions' disagreement. For the
brain-border and outside-brain fractions, where clean cases score about 0, and for the number of large tumour
components and the share of small ones (the model's own scattered false positives on clean
scans are its normal, not a warning), it only ever raises the default. ``reject`` stays at
least twice as far (entropy: halfway to 1). Thresholds of signals a clean held-out set cannot
inform keep their defaults: isolated enhancement, the plausibility limits, the tumour-core
fraction and the core's enhancing share (rules of glioma anatomy; the held-out set's healthy
brains, on which a model may hallucinate oedema with a non-enhancing "core", would pull a
quantile of either down to nothing: 4 of 24 healthy calibration brains of the bench did so for the
enhancing share), and the tumour-support factor (its reference is the training tumours' own
contrast, recorded at export; healthy brains' false tumours are faint and would pull a quantile
of it down to them). The
manifest's ``quality`` block gains ``thresholds`` and ``calibration`` (what was used); the
bundle id does not change, a signature is removed (it signed the old manifest).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from glioedge.bundle import Bundle, write_manifest
from glioedge.errors import ConfigError, InputError
from glioedge.fileio import atomic_write_text
from glioedge.runtime.quality.thresholds import QualityThresholds

logger = logging.getLogger(__name__)

__all__ = ["calibrate_bundle", "cases_needed", "thresholds_from_scores"]


def _score_families(scores: Sequence[dict[str, Any]]) -> tuple[dict[str, list[float]], int]:
    """The finite values of each calibrated score over the cases, and how many signals (tests)
    they make: each modality's intensity distance is one."""
    families = {
        "distance": [d for s in scores for d in (s["distribution"].get("distance") or {}).values()],
        "entropy": [s["uncertainty"].get("entropy_mean") for s in scores],
        "mirror": [(s["uncertainty"].get("mirror_disagreement") or {}).get("mean") for s in scores],
        "border": [s["coverage"]["border_fraction"] for s in scores],
        "components": [s["anatomy"].get("components_large") for s in scores],
        "speckle": [s["anatomy"].get("small_component_fraction") for s in scores
                    if s["anatomy"].get("components", 0) >= 5],
        "outside": [s["anatomy"].get("outside_brain_fraction") for s in scores],
    }
    finite = {k: [float(v) for v in vs if v is not None and np.isfinite(v)] for k, vs in families.items()}
    modalities = {m for s in scores for m in (s["distribution"].get("distance") or {})}
    tests = (sum(1 for k, vs in finite.items() if vs and k != "distance")
             + (len(modalities) if finite["distance"] else 0))
    return finite, tests


def cases_needed(scores: Sequence[dict[str, Any]], false_alarm: float) -> int:
    """Held-out cases needed before ``false_alarm`` can be bounded at all: a threshold at the
    largest of ``n`` clean scores is still exceeded by a new clean case with probability about
    ``1 / (n + 1)``, so ``k`` signals need ``n >= k / false_alarm - 1``."""
    _, tests = _score_families(scores)
    return max(int(np.ceil(max(tests, 1) / false_alarm)) - 1, 1) if false_alarm > 0 else len(scores)


def thresholds_from_scores(scores: Sequence[dict[str, Any]], false_alarm: float,
                           base: QualityThresholds) -> QualityThresholds:
    """Thresholds from the ``scores`` of clean held-out results (``Quality.to_dict()["scores"]``)."""
    if not 0 <= false_alarm < 1:
        raise ConfigError(f"false_alarm must be in [0, 1), got {false_alarm}")
    finite, tests = _score_families(scores)
    q = 100 * (1 - false_alarm / max(tests, 1))

    def quantile(name: str) -> float | None:
        return float(np.percentile(finite[name], q)) if finite[name] else None

    dist, ent, mirror = quantile("distance"), quantile("entropy"), quantile("mirror")
    border, outside = quantile("border"), quantile("outside")
    components, speckle = quantile("components"), quantile("speckle")
    t = base
    if dist is not None:  # the calibrated distance replaces the training-spread rule
        t = replace(t, distribution_review=dist, distribution_spread_factor=0.0,
                    distribution_reject=max(base.distribution_reject, 2 * dist))
    if ent is not None:
        review = min(max(ent, 0.0), 0.99)
        t = replace(t, entropy_review=review, entropy_reject=max(base.entropy_reject, (1 + review) / 2))
    if mirror is not None:  # only cases segmented with mirroring have it
        review = min(max(mirror, 0.0), 0.99)
        t = replace(t, mirror_disagreement_review=review,
                    mirror_disagreement_reject=max(base.mirror_disagreement_reject, min(2 * review, 1.0)))
    # Clean cases mostly score 0 here: the quantile only ever raises the default.
    if border is not None:
        review = max(border, base.border_review)
        t = replace(t, border_review=review, border_reject=max(base.border_reject, 2 * review))
    if outside is not None:
        review = max(outside, base.outside_brain_review)
        t = replace(t, outside_brain_review=review,
                    outside_brain_reject=max(base.outside_brain_reject, 2 * review))
    # A model's scattered false positives on clean cases: the component counts it gives them are
    # its normal, not a warning (raised only, never lowered below the default).
    if components is not None:
        t = replace(t, components_review=max(base.components_review, int(np.floor(components)) + 1))
    if speckle is not None:
        t = replace(t, small_fraction_review=min(max(base.small_fraction_review, speckle), 0.99))
    return t


def calibrate_bundle(bundle_dir: Path, studies: Sequence[Path], *, false_alarm: float = 0.05,
                     backend: str = "auto", device: str | None = None,
                     mirror: bool = False, scores_out: Path | None = None) -> dict[str, Any]:
    """Segment ``studies`` with the bundle and store calibrated thresholds in its manifest.

    ``mirror``: segment with test-time mirroring (as a site that runs with it does), which also
    calibrates the mirror-disagreement threshold (without it that threshold keeps its value).
    ``scores_out``: also write each case's verdict (under the defaults / the thresholds before
    this calibration) and scores there, by position in ``studies`` (no folder names: they may
    name patients).

    Returns:
        The manifest's new ``quality`` block.

    Raises:
        InputError: no study given or a study cannot be segmented.
        ConfigError: ``false_alarm`` out of range.
    """
    from glioedge.runtime.segmenter import Segmenter, SegmenterConfig

    if not studies:
        raise InputError("quality calibrate: no held-out studies given")
    scores, cases = [], []
    with Segmenter.from_bundle(bundle_dir, backend, device, SegmenterConfig(mirror=mirror)) as seg:
        for study in studies:
            result = seg.segment_study(study)
            scores.append(result.quality["scores"])
            cases.append({"case": len(cases), "verdict": result.quality["verdict"],
                          "reasons": [r["code"] for r in result.quality["reasons"]],
                          "scores": result.quality["scores"]})
            logger.info("calibration case %d/%d: %s", len(scores), len(studies), result.quality["verdict"])
    bundle = Bundle.load(bundle_dir, verify=True)
    thresholds = thresholds_from_scores(scores, false_alarm, QualityThresholds())
    block = dict(bundle.manifest.quality or {})
    block["thresholds"] = thresholds.to_dict()
    needed = cases_needed(scores, false_alarm)
    if len(scores) < needed:
        logger.warning("quality calibrate: %d held-out cases cannot bound the false-alarm rate to %g "
                       "(a new clean case exceeds the largest of n scores with probability about "
                       "1/(n+1), per signal): expect more clean cases flagged; give at least %d",
                       len(scores), false_alarm, needed)
    block["calibration"] = {"cases": len(scores), "cases_needed": needed, "false_alarm": false_alarm,
                            "mirror": mirror,
                            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    write_manifest(bundle.root, replace(bundle.manifest, quality=block))
    if scores_out is not None:
        atomic_write_text(scores_out, json.dumps({"calibration": block["calibration"],
                                                  "thresholds": block["thresholds"], "cases": cases},
                                                 indent=1))
    from glioedge.bundle_signing import SIGNATURE_FILE

    signature = bundle.root / SIGNATURE_FILE
    if signature.exists():  # it signed the previous manifest: it no longer holds
        signature.unlink()
        logger.warning("%s: the manifest changed (quality thresholds); its signature was removed: "
                       "sign the bundle again (glioedge bundle sign)", bundle.root)
    return block
