"""Affine ↔ SimpleITK helpers (numpy/SimpleITK only; the runtime uses them).

An image is ``array[i, j, k]`` plus a 4×4 affine mapping ``(i, j, k, 1)`` to LPS millimetres.
SimpleITK images are LPS too; their arrays are ``(k, j, i)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk  # noqa: N813

__all__ = [
    "affine_from_sitk",
    "affine_to_sitk_geometry",
    "array_from_sitk",
    "make_affine",
    "sitk_from_array",
    "spacing_of",
]


def spacing_of(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel spacing (mm): the column norms of ``affine[:3, :3]``."""
    norms = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)
    return (float(norms[0]), float(norms[1]), float(norms[2]))


def make_affine(
    spacing: Sequence[float],
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    direction: np.ndarray | None = None,
) -> np.ndarray:
    """Build a 4×4 LPS affine from spacing, origin (centre of voxel 0) and direction columns."""
    d = np.eye(3) if direction is None else np.asarray(direction, dtype=np.float64)
    aff = np.eye(4)
    aff[:3, :3] = d * np.asarray(spacing, dtype=np.float64)[None, :]
    aff[:3, 3] = np.asarray(origin, dtype=np.float64)
    return aff


def affine_from_sitk(image: sitk.Image) -> np.ndarray:
    """The 4×4 LPS affine of a 3-D SimpleITK image."""
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    return make_affine(image.GetSpacing(), image.GetOrigin(), direction)


def affine_to_sitk_geometry(
    affine: np.ndarray,
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """(spacing, origin, row-major direction) of an affine, as SimpleITK wants them."""
    aff = np.asarray(affine, dtype=np.float64)
    spacing = np.asarray(spacing_of(aff))
    direction = aff[:3, :3] / spacing[None, :]
    return (
        tuple(float(s) for s in spacing),
        tuple(float(o) for o in aff[:3, 3]),
        tuple(float(v) for v in direction.ravel()),
    )


def sitk_from_array(array: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """A SimpleITK image of ``array[i, j, k]`` placed by ``affine``."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array).transpose(2, 1, 0)))
    spacing, origin, direction = affine_to_sitk_geometry(affine)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image


def array_from_sitk(image: sitk.Image) -> np.ndarray:
    """The ``(i, j, k)`` array of a 3-D SimpleITK image (a transposed copy, C-contiguous)."""
    return np.ascontiguousarray(sitk.GetArrayFromImage(image).transpose(2, 1, 0))
