"""Clinical acquisition grids, and a 1 mm volume resampled onto them in physical space.

A site's brain MR protocol rarely gives 1 mm axial voxels: the 3-D T1 is often sagittal and
tilted, FLAIR and T2 are 2-D with 4–5 mm slices. A :class:`ClinicalGeometry` names such a grid
(orientation, tilt, spacing); :func:`clinical_grid` places it over a volume's field of view and
:func:`sample_on` resamples the volume onto it (B-spline for images, nearest neighbour for
labels and masks), after smoothing across the slices as a thick slice's profile does.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np
from scipy import ndimage

from glioedge.dicom_io import Volume, resample_to
from glioedge.dicom_io.volume import make_affine
from glioedge.synth.phantom import direction_matrix

__all__ = ["CLINICAL_GEOMETRIES", "ClinicalGeometry", "clinical_grid", "mask_on", "sample_on"]


@dataclass(frozen=True)
class ClinicalGeometry:
    """An acquisition grid.

    Attributes:
        name: short id (used in file and series names).
        orientation: ``axial``, ``sagittal`` or ``coronal`` (before the tilt).
        spacing: (column, row, slice) spacing in mm, i.e. along i, j, k.
        tilt_deg: rotation of the slab about the patient's A–P axis (a planned oblique).
        description: what a site would call it.
    """

    name: str
    orientation: str
    spacing: tuple[float, float, float]
    tilt_deg: float = 0.0
    description: str = ""

    def direction(self) -> np.ndarray:
        """3×3 LPS direction (columns i, j, k)."""
        a = np.deg2rad(self.tilt_deg)
        about_ap = np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])
        return about_ap @ direction_matrix(self.orientation)


#: The grids of issue 22: a tilted 3-D sagittal T1, a 2-D axial and a coronal series.
CLINICAL_GEOMETRIES: dict[str, ClinicalGeometry] = {
    g.name: g for g in (
        ClinicalGeometry("sag1-tilt15", "sagittal", (1.0, 1.0, 1.0), 15.0,
                         "3-D sagittal 1 mm, slab tilted 15°"),
        ClinicalGeometry("ax5", "axial", (0.9375, 0.9375, 5.0), 0.0, "2-D axial, 5 mm slices"),
        ClinicalGeometry("cor4", "coronal", (0.9375, 0.9375, 4.0), 0.0, "2-D coronal, 4 mm slices"),
        ClinicalGeometry("ax1", "axial", (1.0, 1.0, 1.0), 0.0, "3-D axial 1 mm"),
    )
}


def clinical_grid(geometry: ClinicalGeometry, field_of_view: Volume) -> Volume:
    """An empty (zero) volume on ``geometry``'s grid covering ``field_of_view``'s box.

    The grid's axes are ``geometry.direction()``; it spans the projection of the eight corners
    of ``field_of_view`` onto them, so nothing of the source falls outside it.
    """
    direction = geometry.direction()
    spacing = np.asarray(geometry.spacing, dtype=np.float64)
    corners = np.array([field_of_view.affine @ np.array([*c, 1.0]) for c in
                        product(*((0, n - 1) for n in field_of_view.shape))])[:, :3]
    along = corners @ direction  # coordinates of the corners along the new axes
    lo, hi = along.min(0), along.max(0)
    shape = tuple(int(np.ceil((h - low) / s)) + 1 for low, h, s in zip(lo, hi, spacing, strict=True))
    centre_along = (lo + hi) / 2
    half = (np.asarray(shape) - 1) / 2 * spacing
    origin = direction @ (centre_along - half)
    affine = make_affine(origin, spacing, direction)
    return Volume(np.zeros(shape, np.float32), affine)


def sample_on(volume: Volume, grid: Volume, *, labels: bool = False) -> Volume:
    """``volume`` resampled onto ``grid`` in physical space.

    Images are first smoothed with a Gaussian of FWHM = the target slice spacing (applied along
    the source axis closest to the target's slice normal), so a 5 mm slice averages 5 mm of
    anatomy as a real one does; then B-spline interpolated. Labels (``labels=True``) use nearest
    neighbour and no smoothing.
    """
    if labels:
        return resample_to(volume, grid, "nearest")
    src = np.asarray(volume.array, dtype=np.float32)
    normal = grid.direction[:, 2]
    axis = int(np.argmax(np.abs(volume.direction.T @ normal)))
    fwhm = float(grid.spacing[2])
    sigma_mm = max(0.0, (fwhm**2 - float(volume.spacing[axis]) ** 2)) ** 0.5 / 2.355
    if sigma_mm > 0.2:
        sigma = [0.0, 0.0, 0.0]
        sigma[axis] = sigma_mm / float(volume.spacing[axis])
        src = ndimage.gaussian_filter(src, sigma)
    out = resample_to(volume.with_array(src), grid, "bspline")
    return out.with_array(np.clip(np.asarray(out.array), 0, None).astype(np.float32))


def mask_on(mask: Volume, grid: Volume) -> np.ndarray:
    """A binary mask at ``grid``'s voxel centres, to compare masks in physical space: linear
    interpolation of the 0/1 mask, ≥ 0.5, which places its surface to sub-voxel accuracy (nearest
    neighbour moves it by up to half a voxel diagonal: ~0.002 Dice on a 1.9 L brain)."""
    moved = resample_to(mask.with_array(np.asarray(mask.array, np.float32)), grid, "linear")
    return np.asarray(moved.array) >= 0.5
