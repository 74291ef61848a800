"""The verdict of one case from its signals: ``ok``, ``review`` or ``reject``, with reasons and scores.

The worst reason decides (``info`` reasons never lower it). An empty segmentation is a valid
outcome, reported as the finding "no tumour found" (its verdict comes from the other signals); a
study that could not be segmented produces no result at all (an error), never an empty one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from glioedge.runtime.quality import signals as S
from glioedge.runtime.quality.policy import summary_of
from glioedge.runtime.quality.signals import Reason
from glioedge.runtime.quality.thresholds import QualityThresholds

__all__ = ["NO_TUMOUR", "OK", "REJECT", "REVIEW", "Quality", "assess"]

OK, REVIEW, REJECT = "ok", "review", "reject"
_RANK = {OK: 0, REVIEW: 1, REJECT: 2}
NO_TUMOUR = "no tumour found"


@dataclass(frozen=True)
class Quality:
    """A case's verdict (``ok | review | reject``), the finding (``tumour`` or ``no tumour
    found``), the reasons, and the scores per signal behind them."""

    verdict: str
    finding: str
    reasons: tuple[Reason, ...] = ()
    scores: Mapping[str, Any] = field(default_factory=dict)
    thresholds_source: str = "defaults"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (what ``report.json`` holds under ``quality``)."""
        return {"verdict": self.verdict, "finding": self.finding,
                "reasons": [r.to_dict() for r in self.reasons], "scores": dict(self.scores),
                "thresholds": self.thresholds_source}

    def summary(self) -> str:
        """One line: ``REVIEW: brain_cut_off, uncertain`` / ``OK: no tumour found``."""
        return summary_of(self.to_dict())


def assess(*, labels: np.ndarray, brain_mask: np.ndarray, spacing: Sequence[float],
           profiles: Mapping[str, Mapping[str, Any]], entropy: Mapping[str, Any], mirror: bool,
           block: Mapping[str, Any] | None, images: Mapping[str, np.ndarray] | None = None,
           disagreement: Mapping[str, Any] | None = None,
           contrast: Mapping[str, Mapping[str, float | None]] | None = None,
           outside_brain_fraction: float | None = None) -> Quality:
    """All signals of one case and their verdict.

    Args:
        labels: the final label map (reference grid). brain_mask: the brain mask used (same grid).
        spacing: the grid's voxel spacing (mm).
        profiles: modality → intensity profile of the network input (:mod:`glioedge.intensity_profile`).
        entropy: :func:`signals.entropy_stats` of the softmax on the reference grid.
        mirror: whether test-time mirroring was on.
        block: the manifest's ``quality`` block (training profile, thresholds), or ``None``.
        images: modality → image on the label map's grid (for the per-series coverage).
        disagreement: :func:`signals.disagreement_stats` of the mirrored predictions (``None``
            without mirroring).
        contrast: region → modality → the predicted tumour's contrast to the brain
            (:func:`glioedge.intensity_profile.region_contrasts`), or ``None`` (not judged).
        outside_brain_fraction: share of the network's tumour outside the brain mask before
            post-processing removed it (``None``: measured on ``labels``).

    Raises:
        ModelError: the block's thresholds are malformed.
    """
    block = block or {}
    t = QualityThresholds.from_manifest(block)
    scores: dict[str, Any] = {}
    reasons: list[Reason] = []
    for name, (sc, rs) in {
        "distribution": S.distribution(profiles, block.get("intensity"), t),
        "coverage": S.coverage(brain_mask, spacing, block.get("training_max_spacing_mm"), t, images),
        "uncertainty": S.uncertainty(entropy, mirror, t, disagreement),
        "anatomy": S.anatomy(labels, brain_mask, spacing, t, outside_brain_fraction),
        "support": S.tumour_support(contrast or {}, block.get("tumour_contrast"), t),
    }.items():
        scores[name] = sc
        reasons.extend(rs)
    finding = "tumour"
    if not np.any(np.asarray(labels) > 0):
        finding = NO_TUMOUR
        reasons.append(Reason("no_tumour", "info", "no tumour found: the segmentation is empty "
                              "(a result, not a failure)"))
    if not block.get("intensity"):
        reasons.append(Reason("no_training_profile", "info", scores["distribution"]["why"]))
    verdict = max((r.severity for r in reasons if r.severity in _RANK), key=_RANK.__getitem__, default=OK)
    source = "bundle" if block.get("thresholds") else "defaults"
    return Quality(verdict=verdict, finding=finding, reasons=tuple(reasons), scores=scores,
                   thresholds_source=source)
