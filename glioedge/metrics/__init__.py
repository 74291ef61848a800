"""The one implementation of glioedge's segmentation metrics (BraTS 2023+ set), torch-free.

Used by training validation (:mod:`glioedge.train.validation`), the benches and
``glioedge evaluate`` (:mod:`glioedge.evaluation`); imports only the ground floor, numpy and
scipy, so a site box without PyTorch evaluates. Cross-tested against the official BraTS package
(``tests/metrics/test_official_catalogue.py``); the conventions are in ``docs/evaluation.md``.

May import: the ground floor (``tests/test_architecture.py``), numpy and scipy.
"""

from __future__ import annotations

from glioedge.metrics.brats import (
    EVAL_REGIONS,
    OFFICIAL_HD95_PENALTY,
    OFFICIAL_REGION_NAMES,
    RegionMetrics,
    count_lesions,
    evaluate_case,
    region_metrics,
)
from glioedge.metrics.lesions import Lesion, LesionMatch, components, match_lesions
from glioedge.metrics.summary import describe, summarise
from glioedge.metrics.surface import HD95_EMPTY, dice, hd95, nsd_from_distances, surface_distances

__all__ = [
    "EVAL_REGIONS",
    "HD95_EMPTY",
    "METRICS",
    "OFFICIAL_HD95_PENALTY",
    "OFFICIAL_REGION_NAMES",
    "Lesion",
    "LesionMatch",
    "RegionMetrics",
    "components",
    "count_lesions",
    "describe",
    "dice",
    "evaluate_case",
    "hd95",
    "match_lesions",
    "nsd_from_distances",
    "region_metrics",
    "summarise",
    "surface_distances",
]

#: Metric names in the compact per-case result of :func:`evaluate_case` (training validation).
METRICS: tuple[str, ...] = ("dice", "hd95")
