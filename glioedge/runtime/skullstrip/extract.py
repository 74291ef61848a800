"""The brain-extraction stage: the selected series → one tumour-safe mask on the reference grid.

``extract_brain(volumes, model, reference)`` crops each series it runs to the head's box
(:mod:`.headbox`), runs the bundle's brain-mask network on it (on its own grid, or on the fused
volumes), resamples the brain probability onto the reference grid in physical space, and makes
the mask tumour-safe (:mod:`.safety`). By default (``series="best"``) the network runs on the
series with the finest voxels only — one HD-BET pass is most of a study's time on a CPU — and on
the others too (their union, as ``series="all"`` always does) when that series' brain volume is
implausible; a tumour that touches the mask's border is still handled after segmentation by the
grown-mask re-run. Its :class:`BrainExtraction` carries the mask, the brain volume, plausibility
warnings, timings and the parameters to record in the report and in the SEG's algorithm
parameters (``series_run``: the series the network ran on).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from glioedge.dicom_io import Volume
from glioedge.errors import BackendError, ConfigError, InputError
from glioedge.runtime.skullstrip.headbox import head_box
from glioedge.runtime.skullstrip.model import BrainMaskModel
from glioedge.runtime.skullstrip.safety import brain_volume_ml, plausibility_warnings, tumour_safe_mask

logger = logging.getLogger(__name__)

__all__ = ["SERIES_STRATEGIES", "BrainExtraction", "SkullStripConfig", "extract_brain"]

#: how many series the network runs on (see :class:`SkullStripConfig`)
SERIES_STRATEGIES = ("best", "all")


@dataclass(frozen=True)
class SkullStripConfig:
    """How the brain mask is made tumour-safe (one source of defaults).

    Attributes:
        margin_mm: dilation of the filled union, in mm.
        mirror: test-time mirroring over the three axes (8× slower on CPU; upstream's default).
            ``None`` uses the model's ``mirror_axes``.
        threshold: brain-probability threshold (``None``: the model's).
        keep_largest: keep the largest connected component of the union.
        min_ml, max_ml: plausible brain volume; outside it, a warning in the report.
        series: ``"best"``: run the network on the series with the finest voxels (the
            reference on a tie, e.g. when all are fused onto one grid) and add the others'
            masks (the union, as ``"all"``) only when that mask's volume is implausible;
            ``"all"``: every series, always (the network's time × the number of series).
            Either way the post-segmentation regrow (:func:`.safety.grow_for_tumour`) applies.
        head_box_mm: crop each series to the head's bounding box grown by this margin before
            the network (:mod:`.headbox`); ``None`` runs the whole field of view.
    """

    margin_mm: float = 3.0
    mirror: bool | None = False
    threshold: float | None = None
    keep_largest: bool = True
    min_ml: float = 800.0
    max_ml: float = 2000.0
    series: str = "best"
    head_box_mm: float | None = 10.0

    def __post_init__(self) -> None:
        """Validate.

        Raises:
            ConfigError: a negative margin, a threshold outside (0, 1) or min ≥ max.
        """
        if self.margin_mm < 0:
            raise ConfigError(f"brain-mask margin_mm must be ≥ 0, got {self.margin_mm}")
        if self.threshold is not None and not 0 < self.threshold < 1:
            raise ConfigError(f"brain-mask threshold must be in (0, 1), got {self.threshold}")
        if self.min_ml >= self.max_ml:
            raise ConfigError(f"brain volume bounds min_ml {self.min_ml} ≥ max_ml {self.max_ml}")
        if self.series not in SERIES_STRATEGIES:
            raise ConfigError(f"brain-mask series {self.series!r}; valid: {', '.join(SERIES_STRATEGIES)}")
        if self.head_box_mm is not None and self.head_box_mm < 0:
            raise ConfigError(f"brain-mask head_box_mm must be ≥ 0 or None, got {self.head_box_mm}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SkullStripConfig:
        """Build from a dict; unknown keys are ignored."""
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


@dataclass(frozen=True, eq=False)
class BrainExtraction:
    """What the stage produced.

    Attributes:
        mask: the dilated, tumour-safe mask on the reference grid (what the tumour model uses).
        brain: the filled union before dilation.
        brain_ml: volume of ``brain`` (mL). mask_ml: volume of ``mask`` (mL).
        per_series_ml: brain volume each series alone gave (mL).
        warnings: plausibility warnings.
        seconds: wall time of the stage.
        params: model and configuration, JSON-serialisable.
    """

    mask: np.ndarray
    brain: np.ndarray
    brain_ml: float
    mask_ml: float
    per_series_ml: dict[str, float]
    warnings: tuple[str, ...]
    seconds: float
    params: dict[str, Any] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        """JSON-serialisable summary for the report."""
        return {
            "brain_ml": round(self.brain_ml, 1), "mask_ml": round(self.mask_ml, 1),
            "per_series_ml": {k: round(v, 1) for k, v in self.per_series_ml.items()},
            "warnings": list(self.warnings), "seconds": round(self.seconds, 2), **self.params,
        }


def extract_brain(
    volumes: Mapping[str, Volume], model: BrainMaskModel, reference: Volume | str,
    config: SkullStripConfig | None = None,
) -> BrainExtraction:
    """One tumour-safe brain mask for a study.

    Args:
        volumes: series name (modality) → volume, each on its own grid or all on one.
        model: the bundle's brain-mask network.
        reference: the grid of the mask (a volume, or a key of ``volumes``).
        config: margin, mirroring, threshold and plausibility bounds.

    Raises:
        InputError: no volumes, an unknown reference key, a constant image, or no brain found.
        BackendError: the network failed in ONNX Runtime.
    """
    cfg = config or SkullStripConfig()
    if not volumes:
        raise InputError("brain extraction needs at least one series")
    if isinstance(reference, str):
        if reference not in volumes:
            raise InputError(f"brain extraction: reference {reference!r} not among {sorted(volumes)}")
        reference = volumes[reference]
    spec = model.spec
    mirror_axes = spec.mirror_axes if cfg.mirror is None else ((0, 1, 2) if cfg.mirror else ())
    threshold = spec.threshold if cfg.threshold is None else cfg.threshold
    t0 = time.perf_counter()
    masks: list[np.ndarray] = []
    per_series: dict[str, float] = {}
    spacing = reference.spacing
    order = _by_resolution(volumes, reference)
    run = order if cfg.series == "all" else order[:1]
    for name in run:
        masks.append(_series_mask(name, volumes[name], model, reference, mirror_axes, threshold, cfg))
        per_series[name] = brain_volume_ml(masks[-1], spacing)
    if cfg.series == "best" and len(order) > 1 and plausibility_warnings(
            per_series[run[0]], cfg.min_ml, cfg.max_ml):
        logger.warning("brain extraction: series %s alone gave %.0f mL; adding the other series",
                       run[0], per_series[run[0]])
        for name in order[1:]:
            masks.append(_series_mask(name, volumes[name], model, reference, mirror_axes, threshold, cfg))
            per_series[name] = brain_volume_ml(masks[-1], spacing)
    brain, mask = tumour_safe_mask(masks, spacing, cfg.margin_mm, keep_largest=cfg.keep_largest)
    brain_ml = brain_volume_ml(brain, spacing)
    warnings = tuple(plausibility_warnings(brain_ml, cfg.min_ml, cfg.max_ml))
    for w in warnings:
        logger.warning("brain extraction: %s", w)
    seconds = time.perf_counter() - t0
    params = {**model.describe(), "mirror_axes": list(mirror_axes), "threshold": threshold,
              "margin_mm": cfg.margin_mm, "keep_largest": cfg.keep_largest,
              "series": sorted(volumes), "series_run": list(per_series),
              "strategy": cfg.series, "head_box_mm": cfg.head_box_mm}
    return BrainExtraction(mask=mask, brain=brain, brain_ml=brain_ml,
                           mask_ml=brain_volume_ml(mask, spacing), per_series_ml=per_series,
                           warnings=warnings, seconds=seconds, params=params)


def _by_resolution(volumes: Mapping[str, Volume], reference: Volume) -> list[str]:
    """Series names, finest voxels first; on a tie the reference series itself, then the others
    on its grid (volumes fused onto the reference grid all tie: the reference is the one whose
    voxels are its own, not interpolated)."""
    def key(name: str) -> tuple[float, int]:
        vol = volumes[name]
        rank = 0 if vol is reference else 1 if vol.same_grid(reference) else 2
        return (round(float(np.prod(vol.spacing)), 6), rank)
    return sorted(volumes, key=key)


def _series_mask(name: str, volume: Volume, model: BrainMaskModel, reference: Volume,
                 mirror_axes: tuple[int, ...], threshold: float, cfg: SkullStripConfig) -> np.ndarray:
    """One series' thresholded brain probability on the reference grid."""
    source = volume if cfg.head_box_mm is None else head_box(volume, cfg.head_box_mm).volume
    try:
        prob = model.probability(source, reference, mirror_axes=mirror_axes)
    except InputError as exc:
        raise InputError(f"brain extraction on series {name!r}: {exc}") from exc
    except BackendError as exc:
        raise BackendError(f"brain extraction on series {name!r}: {exc}") from exc
    mask = prob > threshold
    del prob
    if not mask.any():
        logger.warning("brain extraction: no brain found in series %s", name)
    return mask
