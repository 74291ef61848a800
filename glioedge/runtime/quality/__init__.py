"""Per-case quality verdict (``ok | review | reject``): is this segmentation to be trusted?

Signals (:mod:`.signals`) from what the Segmenter already has: input vs training intensity
profile, coverage and slice thickness, predictive entropy and (mirroring on) the disagreement of
the mirrored predictions, anatomical plausibility, and the
"no tumour found" outcome; thresholds (:mod:`.thresholds`) from defaults or the bundle's
``quality`` manifest block; the verdict (:mod:`.verdict`). numpy/scipy only, no torch.

May import: what ``runtime`` may (``tests/test_architecture.py``): here ``runtime``,
``bundle``, ``bundle_signing``, ``intensity_profile``, ``vocabulary``.
"""

from glioedge.runtime.quality.policy import DELIVER_POLICIES, check_policy, delivers, summary_of
from glioedge.runtime.quality.signals import Reason, disagreement_stats, entropy_stats
from glioedge.runtime.quality.thresholds import QualityThresholds
from glioedge.runtime.quality.verdict import NO_TUMOUR, OK, REJECT, REVIEW, Quality, assess

__all__ = ["DELIVER_POLICIES", "NO_TUMOUR", "OK", "REJECT", "REVIEW", "Quality", "QualityThresholds",
           "Reason", "assess", "check_policy", "delivers", "disagreement_stats", "entropy_stats",
           "summary_of"]
