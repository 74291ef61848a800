"""The bundle's ``quality`` manifest block from the training cases (issue 19).

At export, the training run's preprocessed cases (``<run>/preprocessed``, the training half of
``<run>/split.json`` when present; ``<run>`` is found above the checkpoint folder) give, per
student modality, the intensity profile of the network input in the tumour-free brain
(:mod:`glioedge.intensity_profile`; the runtime leaves out the tumour it predicts), how far the
labelled whole tumour and enhancing tumour stand out from that brain (their faintest and median
case), and the thickest voxel
among the cases' source grids. The
runtime compares each study with them. Without the training folder the block is left out and the
runtime says that the distribution signal is not available.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from glioedge.data.dataset import load_preprocessed
from glioedge.data.geometry import spacing_of
from glioedge.intensity_profile import merge_profiles, profile, region_contrasts

logger = logging.getLogger(__name__)

__all__ = ["MAX_CASES", "find_training_cases", "quality_block"]

#: Cases read at most (evenly spread over the training set); the profile of 64 is stable.
MAX_CASES = 64


def preprocessed_cases(folder: Path) -> list[Path]:
    """The preprocessed cases (``<id>.npy``, not their ``_seg``/``_mask`` arrays) in ``folder``."""
    return sorted(p for p in folder.glob("*.npy") if not p.name.endswith(("_seg.npy", "_mask.npy")))


def find_training_cases(checkpoint: Path) -> list[Path]:
    """The ``<id>.npy`` files of the training cases of the run that wrote ``checkpoint``
    (``[]`` when the run folder is not beside it)."""
    for run in (checkpoint, *checkpoint.parents[:3]):
        pre = run / "preprocessed"
        if not pre.is_dir():
            continue
        cases = preprocessed_cases(pre)
        split = run / "split.json"
        if split.is_file():
            train = set(json.loads(split.read_text()).get("train", []))
            cases = [p for p in cases if p.stem in train] or cases
        return cases
    return []


def quality_block(cases: Sequence[Path], channel_modalities: Sequence[str],
                  student_modalities: Sequence[str]) -> dict[str, Any] | None:
    """The ``quality`` block from preprocessed cases whose channels are ``channel_modalities``.

    Returns:
        ``{"intensity": {modality: merged profile}, "tumour_contrast": {region: {modality:
        {"min", "median", "cases"}}}, "training_max_spacing_mm": mm, "cases": n,
        "source": "training preprocessed cases"}``, or ``None`` without cases.
    """
    if not cases:
        return None
    step = max(1, len(cases) // MAX_CASES)
    chosen = list(cases)[::step][:MAX_CASES]
    index = {m: list(channel_modalities).index(m) for m in student_modalities if m in channel_modalities}
    per_mod: dict[str, list[dict[str, Any]]] = {m: [] for m in index}
    contrast: dict[str, dict[str, list[float]]] = {}
    spacing = 0.0
    for path in chosen:
        case = load_preprocessed(path)
        brain = mask = np.asarray(case.mask, bool)
        if case.label is not None:  # normal-appearing brain: the runtime leaves out its predicted tumour
            mask = mask & (np.asarray(case.label) == 0)  # not in place: the arrays are read-only maps
        for m, c in index.items():
            per_mod[m].append(profile(np.asarray(case.data[c]), mask))
        if case.label is not None:
            channels = np.asarray(case.data)[list(index.values())]
            add_contrasts(contrast, region_contrasts(channels, list(index), brain, np.asarray(case.label)))
        spacing = max(spacing, *spacing_of(np.asarray(case.record.original_affine)))
    logger.info("quality block: intensity profiles of %d training cases", len(chosen))
    return {"intensity": {m: merge_profiles(p) for m, p in per_mod.items()},
            "tumour_contrast": contrast_record(contrast),
            "training_max_spacing_mm": round(spacing, 4), "cases": len(chosen),
            "source": "training preprocessed cases"}


def add_contrasts(into: dict[str, dict[str, list[float]]],
                  case: dict[str, dict[str, float | None]]) -> None:
    """Collect one case's :func:`region_contrasts` (regions it does not have are skipped)."""
    for region, per_modality in case.items():
        for m, value in per_modality.items():
            if value is not None:
                into.setdefault(region, {}).setdefault(m, []).append(value)


def contrast_record(contrast: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per tumour region and modality, the training tumours' contrast to their brain: the
    faintest, the median and how many cases."""
    return {region: {m: {"min": round(min(v), 4), "median": round(float(np.median(v)), 4), "cases": len(v)}
                     for m, v in per.items() if v}
            for region, per in contrast.items()}
