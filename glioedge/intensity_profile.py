"""Intensity profiles of normalised images inside the brain, and the distance between two.

One definition shared by export (which records the training cases' profile in the bundle's
``quality`` manifest block) and the runtime (which compares each study's profile with it). A
profile is computed on the network input (after the product's z-score inside the brain mask), so
it measures the *shape* of the intensity distribution: a global intensity scale is normalised
away (and so costs the model nothing), while noise, bias fields, ghosting or a series of another
contrast change the shape. The profile is taken over the tumour-free brain (training: the label
is background; runtime: the network predicts background) and robustly re-standardised there
(median 0, IQR-based sigma 1), so a healthy brain or a large tumour, which shift the whole-brain
z-score, do not by themselves look unlike the training scans: only the shape counts. numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from glioedge.vocabulary import ET

__all__ = ["BINS", "CONTRAST_REGIONS", "PERCENTILES", "merge_profiles", "profile", "profile_distance",
           "region_contrasts"]

#: Percentiles recorded per modality.
PERCENTILES = (1, 5, 25, 50, 75, 95, 99)
#: Histogram bin edges in z-score units; values outside are clipped into the end bins.
BINS = np.linspace(-4.0, 6.0, 51)
#: Voxels used at most (a regular subsample of the larger masks).
MAX_VOXELS = 200_000


def profile(channel: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    """The profile of one channel inside ``mask``, robustly standardised there (median 0, sigma
    from the IQR): percentiles and a normalised histogram.

    Returns:
        ``{"percentiles": [...], "histogram": [...], "voxels": n}`` (JSON-safe); an empty mask
        gives ``voxels`` 0 and no values.
    """
    vals = np.asarray(channel)[np.asarray(mask, bool)]
    if vals.size == 0:
        return {"percentiles": [], "histogram": [], "voxels": 0}
    n = int(vals.size)
    if n > MAX_VOXELS:  # a fixed stride: deterministic, and the histogram of 2·10⁵ voxels is stable
        vals = vals[:: n // MAX_VOXELS + 1]
    vals = vals.astype(np.float32, copy=False)
    q = np.percentile(vals, (25, 50, 75, *PERCENTILES))
    centre, sigma = float(q[1]), max(float(q[2] - q[0]) / 1.349, 1e-6)
    vals = np.clip((vals - centre) / sigma, BINS[0], BINS[-1])
    hist, _ = np.histogram(vals, bins=BINS)
    return {"percentiles": [round((float(p) - centre) / sigma, 4) for p in q[3:]],
            "histogram": [round(float(h), 6) for h in hist / vals.size], "voxels": n}


def merge_profiles(profiles: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The cohort profile of several cases: the mean histogram and percentiles, and the spread
    (maximum over cases) of each case's distance to that mean (the scale of normal variation)."""
    used = [p for p in profiles if p.get("voxels")]
    if not used:
        return {"percentiles": [], "histogram": [], "cases": 0, "case_distance_max": 0.0}
    hist = np.mean([p["histogram"] for p in used], axis=0)
    perc = np.mean([p["percentiles"] for p in used], axis=0)
    merged: dict[str, Any] = {"percentiles": [round(float(x), 4) for x in perc],
                              "histogram": [round(float(h), 6) for h in hist], "cases": len(used)}
    distances = [profile_distance(p, merged) for p in used]
    merged["case_distance_max"] = round(float(max(distances)), 4)
    merged["case_distance_mean"] = round(float(np.mean(distances)), 4)
    return merged


def profile_distance(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """Wasserstein-1 distance (z-score units) between two profiles' histograms: the area between
    their cumulative distributions over the bin edges (0 = the same distribution)."""
    ha, hb = np.asarray(a["histogram"], float), np.asarray(b["histogram"], float)
    if ha.size == 0 or hb.size == 0 or ha.shape != hb.shape:
        return float("nan")
    width = float(BINS[1] - BINS[0])
    return float(np.abs(np.cumsum(ha) - np.cumsum(hb)).sum() * width)


#: Regions whose contrast to the brain is measured: the whole tumour (any label) and the
#: enhancing tumour (bright on T1CE after contrast, by definition).
CONTRAST_REGIONS = {"WT": lambda labels: labels > 0, "ET": lambda labels: labels == ET}


def region_contrasts(data: np.ndarray, modalities: Sequence[str], brain: np.ndarray,
                     labels: np.ndarray) -> dict[str, dict[str, float | None]]:
    """How far each tumour region of ``labels`` (training: the truth; runtime: the prediction)
    stands out from the rest of the brain in each channel of ``data`` (C, i, j, k): the region's
    median minus the tumour-free brain's, in the brain's robust sigma (from its IQR), as
    ``{region: {modality: value}}`` (``None`` where the region or the brain is empty). Oedema
    and tumour are bright on FLAIR (the whole tumour is defined by it), enhancing tumour on
    T1CE: a region that is not is one the image does not support."""
    brain = np.asarray(brain, bool)
    labels = np.asarray(labels)
    normal = brain & (labels == 0)
    regions = {r: brain & select(labels) for r, select in CONTRAST_REGIONS.items()}
    out: dict[str, dict[str, float | None]] = {r: {} for r in regions}
    for c, m in enumerate(modalities):
        channel = np.asarray(data[c])
        base = channel[normal]
        if base.size > MAX_VOXELS:
            base = base[:: base.size // MAX_VOXELS + 1]
        if base.size:
            q25, q50, q75 = np.percentile(base.astype(np.float32, copy=False), (25, 50, 75))
            sigma = max(float(q75 - q25) / 1.349, 1e-6)
        for r, mask in regions.items():
            inside = channel[mask]
            out[r][m] = (round((float(np.median(inside)) - float(q50)) / sigma, 4)
                         if inside.size and base.size else None)
    return out
