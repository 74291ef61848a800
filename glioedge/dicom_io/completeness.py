"""Is a series whole? What DICOM headers say about a series that may still be arriving.

A study sent in parts (a PACS forwarding slice by slice, a network hiccup, a transfer stopped
half-way) can look like a valid, smaller volume: the slices present are contiguous and evenly
spaced, just too few. Headers offer evidence of what is missing:

* ``ImagesInAcquisition`` (0020,1002): how many images the acquisition produced. Fewer instances
  of the acquisition (``AcquisitionNumber``) in the series than that is a series still arriving.
* Coverage: two series of the study sliced along the same direction (parallel normals) normally
  cover the head in the same range; one ending more than two of its slices short of the other
  at the first or last slice is cut there.
* ``NumberOfFrames`` of an enhanced (multi-frame) instance against its per-frame groups, and
  gaps between slices, are checked when the series is read (:mod:`.series`): those are errors.

These are findings, not errors: a site may acquire a T1CE slab shorter than its FLAIR on
purpose. ``glioedge segment`` and the Python API process such a study, log a warning, record the
findings in ``report.json`` (``intake.completeness``) and mark the SEG's series description; the
daemon holds a study with findings until ``max_wait`` (more slices may come), then does the same.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from glioedge.dicom_io.discovery import Series
from glioedge.dicom_io.series import series_grid
from glioedge.errors import InputError

#: Added to the SEG's SeriesDescription when its inputs may be incomplete.
INCOMPLETE_MARK = " [INCOMPLETE INPUT]"
#: A series that ends more than this many of its own slices short of a parallel series is cut.
SHORT_BY_SLICES = 2.0
_PARALLEL = 0.99


@dataclasses.dataclass(frozen=True)
class Finding:
    """One piece of evidence that a series is not whole."""

    modality: str
    series_instance_uid: str
    kind: str  # "images_in_acquisition" | "coverage"
    message: str

    def to_dict(self) -> dict[str, str]:
        """JSON form (report.json)."""
        return dataclasses.asdict(self)


def _images_in_acquisition(modality: str, series: Series) -> list[Finding]:
    per_acquisition: Counter[str] = Counter()
    expected: dict[str, int] = {}
    for ds in series.datasets:
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            return []  # an enhanced instance: whole by construction (frames checked on reading)
        acq = str(ds.get("AcquisitionNumber", ""))
        per_acquisition[acq] += 1
        try:
            value = int(ds.get("ImagesInAcquisition", 0) or 0)
        except (TypeError, ValueError):
            continue
        expected[acq] = max(expected.get(acq, 0), value)
    out = []
    for acq, want in sorted(expected.items()):
        have = per_acquisition[acq]
        if want > have:
            out.append(Finding(modality, series.series_instance_uid, "images_in_acquisition",
                               f"{modality.upper()} series {series.label()}: {have} of {want} "
                               f"images (ImagesInAcquisition 0020,1002"
                               + (f", acquisition {acq}" if acq else "") + ") are present"))
    return out


def _extent(affine: np.ndarray, shape: tuple[int, int, int], normal: np.ndarray) -> tuple[float, float]:
    """Range of the slice centres of a grid projected on ``normal`` (mm)."""
    corners = np.array([[i, j, k, 1.0] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1)
                        for k in (0, shape[2] - 1)])
    along = (affine @ corners.T)[:3].T @ normal
    return float(along.min()), float(along.max())


def _coverage(grids: Mapping[str, tuple[Series, tuple[int, int, int], np.ndarray]]) -> list[Finding]:
    out = []
    for name, (series, shape, affine) in grids.items():
        step = affine[:3, 2]
        spacing = float(np.linalg.norm(step))
        if spacing == 0:
            continue
        normal = step / spacing
        lo, hi = _extent(affine, shape, normal)
        for other, (_, o_shape, o_affine) in grids.items():
            o_step = o_affine[:3, 2]
            o_norm = float(np.linalg.norm(o_step))
            if other == name or o_norm == 0 or abs(float(o_step @ normal) / o_norm) < _PARALLEL:
                continue
            o_lo, o_hi = _extent(o_affine, o_shape, normal)
            short = [(end, by) for end, by in (("first", lo - o_lo), ("last", o_hi - hi))
                     if by > SHORT_BY_SLICES * spacing]
            for end, by in short:
                out.append(Finding(
                    name, series.series_instance_uid, "coverage",
                    f"{name.upper()} series {series.label()} ({shape[2]} slices) ends {by:.1f} mm "
                    f"(about {by / spacing:.0f} slices) short of the {other.upper()} series at its "
                    f"{end} slice: slices may still be arriving"))
            if short:
                break
    return out


def check_completeness(chosen: Mapping[str, Series]) -> list[Finding]:
    """Evidence that chosen series are not whole (see the module docstring); ``[]``: none.

    Args:
        chosen: modality → series (as :func:`identify_modalities` chose them).
    """
    findings: list[Finding] = []
    grids = {}
    for modality, series in chosen.items():
        findings += _images_in_acquisition(modality, series)
        try:
            shape, affine = series_grid(series, f"{modality.upper()} {series.label()}")
        except InputError:
            continue  # bad geometry is reported when the series is read
        grids[modality] = (series, shape, affine)
    return findings + _coverage(grids)


def completeness_record(findings: list[Finding]) -> dict[str, Any]:
    """``report.json``'s ``intake.completeness``."""
    return {"complete": not findings, "findings": [f.to_dict() for f in findings]}
