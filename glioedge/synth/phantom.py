"""An analytic head phantom, sampled on any grid, for tests, demos and benchmarks.

The phantom is defined in LPS millimetres (centred on the origin), so series of different
orientations and spacings that sample it are consistent in physical space — what a real scanner
gives for the series of one study. Labels use the internal classes 0..3 (bg, NCR, ED, ET).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from glioedge.dicom_io.volume import make_affine

#: Orientation name -> (row direction, column direction) in LPS (ImageOrientationPatient).
ORIENTATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
}

#: Signal of (background, brain, ventricles, NCR, ED, ET) per modality, on a 12-bit scale.
_CONTRAST = {
    "flair": (0, 900, 150, 700, 1900, 1300),
    "t1ce": (0, 1100, 350, 400, 800, 2600),
    "t1": (0, 1100, 350, 500, 800, 900),
    "t2": (0, 800, 2500, 2000, 1800, 1400),
}

_TUMOUR_CENTRE = np.array([25.0, -10.0, 15.0])


def direction_matrix(orientation: str) -> np.ndarray:
    """3×3 direction (columns i, j, k) for ``axial``, ``sagittal``, ``coronal`` or ``oblique``.

    ``oblique`` is axial tilted by 15° about L and 10° about S, as a planned oblique scan is.
    """
    if orientation == "oblique":
        a, b = np.deg2rad(15.0), np.deg2rad(10.0)
        rot_x = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
        rot_z = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
        return rot_z @ rot_x
    row, col = (np.asarray(v) for v in ORIENTATIONS[orientation])
    return np.stack([row, col, np.cross(row, col)], axis=1)


def grid_affine(
    shape: Sequence[int], spacing: Sequence[float], orientation: str = "axial",
    centre: Sequence[float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """The affine of a grid of ``shape`` and ``spacing`` centred on ``centre`` (LPS mm)."""
    direction = direction_matrix(orientation)
    half = (np.asarray(shape, dtype=np.float64) - 1) / 2 * np.asarray(spacing, dtype=np.float64)
    origin = np.asarray(centre, dtype=np.float64) - direction @ half
    return make_affine(origin, spacing, direction)


def _points(shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
    idx = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1)
    return idx.astype(np.float64) @ affine[:3, :3].T + affine[:3, 3]


def phantom_labels(shape: Sequence[int], affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tissue map (0 bg, 1 brain, 2 ventricles) and tumour labels (0..3) sampled on a grid."""
    p = _points(shape, affine)
    head = ((p / np.array([70.0, 85.0, 65.0])) ** 2).sum(-1) <= 1
    vents = (((p - np.array([0.0, 5.0, 5.0])) / np.array([18.0, 30.0, 12.0])) ** 2).sum(-1) <= 1
    tissue = np.where(head, np.where(vents, 2, 1), 0).astype(np.uint8)
    r = np.linalg.norm(p - _TUMOUR_CENTRE, axis=-1)
    labels = np.zeros(tuple(shape), dtype=np.uint8)
    labels[head & (r <= 24)] = 2
    labels[head & (r <= 14)] = 3
    labels[head & (r <= 9)] = 1
    return tissue, labels


def phantom_image(
    shape: Sequence[int], affine: np.ndarray, modality: str = "flair", seed: int = 0
) -> np.ndarray:
    """A 12-bit, integer-valued MR-like image of ``modality`` sampled on the grid (uint16)."""
    tissue, labels = phantom_labels(shape, affine)
    bg, brain, vent, ncr, ed, et = _CONTRAST[modality]
    image = np.choose(tissue, [bg, brain, vent]).astype(np.float64)
    for label, value in ((1, ncr), (2, ed), (3, et)):
        image[labels == label] = value
    rng = np.random.default_rng(seed)
    image += rng.normal(0.0, 20.0, image.shape) * (tissue > 0)
    return np.clip(np.round(image), 0, 4095).astype(np.uint16)
