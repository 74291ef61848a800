"""A 3-D image with its geometry (LPS affine) and the identifiers of the DICOM data it came from.

Conventions (docs/CONVENTIONS.md): ``array[i, j, k]``; ``affine @ (i, j, k, 1)`` gives LPS
millimetres; ``i`` runs along a DICOM row, ``j`` down the columns, ``k`` across slices.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk  # noqa: N813

from glioedge.errors import InputError

#: NIfTI (RAS) <-> DICOM (LPS): flip the first two world axes.
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclasses.dataclass(frozen=True, eq=False)
class Volume:
    """A 3-D image: ``array[i, j, k]`` and a 4×4 affine to LPS millimetres.

    Attributes:
        array: The voxel values, indexed ``(i, j, k)``.
        affine: 4×4 matrix mapping ``(i, j, k, 1)`` to LPS mm.
        study_instance_uid: Study the source series belongs to (``""`` if none).
        series_instance_uid: Source series (``""`` if none).
        sop_instance_uids: Source instances, in the order of ``k`` for single-frame series
            (one UID for a multi-frame instance).
        frame_of_reference_uid: Frame of reference of the source series (``""`` if none).
        description: Free text, e.g. the source SeriesDescription (never patient data).
    """

    array: np.ndarray
    affine: np.ndarray
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    sop_instance_uids: tuple[str, ...] = ()
    frame_of_reference_uid: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        affine = np.asarray(self.affine, dtype=np.float64)
        if self.array.ndim != 3:
            raise InputError(f"Volume array must be 3-D (i, j, k), got shape {self.array.shape}")
        if affine.shape != (4, 4) or not np.allclose(affine[3], [0, 0, 0, 1]):
            raise InputError(f"Volume affine must be a 4×4 homogeneous matrix, got {affine}")
        if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
            raise InputError("Volume affine is singular (a zero spacing or degenerate axes)")
        object.__setattr__(self, "affine", affine)
        object.__setattr__(self, "sop_instance_uids", tuple(self.sop_instance_uids))

    # -- geometry -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(ni, nj, nk)``."""
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size in mm along i, j, k (column norms of the affine)."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    @property
    def direction(self) -> np.ndarray:
        """3×3 matrix whose columns are the unit vectors of i, j, k in LPS."""
        return self.affine[:3, :3] / self.spacing

    @property
    def origin(self) -> np.ndarray:
        """LPS position of voxel (0, 0, 0) in mm."""
        return self.affine[:3, 3].copy()

    def ids(self) -> dict[str, Any]:
        """The DICOM identifiers, for :meth:`replace`-style copies onto a new array."""
        return {
            "study_instance_uid": self.study_instance_uid,
            "series_instance_uid": self.series_instance_uid,
            "sop_instance_uids": self.sop_instance_uids,
            "frame_of_reference_uid": self.frame_of_reference_uid,
            "description": self.description,
        }

    def with_array(self, array: np.ndarray) -> Volume:
        """A copy with another array of the same shape and the same geometry and identifiers."""
        if array.shape != self.array.shape:
            raise InputError(f"with_array: shape {array.shape} differs from {self.array.shape}")
        return dataclasses.replace(self, array=array)

    def same_grid(self, other: Volume, atol: float = 1e-4) -> bool:
        """Whether ``other`` has the same shape and affine (to ``atol`` mm)."""
        return self.shape == other.shape and np.allclose(self.affine, other.affine, atol=atol)

    # -- SimpleITK ------------------------------------------------------------------------
    def to_sitk(self) -> sitk.Image:
        """This volume as a SimpleITK image (SimpleITK's physical space is LPS too)."""
        image = sitk.GetImageFromArray(np.ascontiguousarray(self.array.transpose(2, 1, 0)))
        image.SetSpacing([float(s) for s in self.spacing])
        image.SetOrigin([float(o) for o in self.origin])
        image.SetDirection([float(d) for d in self.direction.ravel()])
        return image

    @classmethod
    def from_sitk(cls, image: sitk.Image, **ids: Any) -> Volume:
        """A volume from a 3-D scalar SimpleITK image; ``ids`` are the identifier fields.

        Raises:
            InputError: the image is not 3-D or not scalar.
        """
        if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
            raise InputError(
                f"expected a 3-D scalar image, got dimension {image.GetDimension()} with "
                f"{image.GetNumberOfComponentsPerPixel()} components"
            )
        return cls(array=sitk.GetArrayFromImage(image).transpose(2, 1, 0),
                   affine=affine_from_sitk(image), **ids)

    # -- NIfTI ----------------------------------------------------------------------------
    def to_nifti(self, path: str | Path) -> Path:
        """Write a NIfTI file (SimpleITK stores LPS geometry as the RAS affine NIfTI expects)."""
        path = Path(path)
        sitk.WriteImage(self.to_sitk(), str(path))
        return path

    @classmethod
    def from_nifti(cls, path: str | Path, **ids: Any) -> Volume:
        """Read a NIfTI file into LPS geometry.

        Raises:
            InputError: the file is missing or not a readable 3-D image.
        """
        path = Path(path)
        if not path.is_file():
            raise InputError(f"NIfTI file {path} does not exist")
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError as exc:
            raise InputError(f"NIfTI file {path} could not be read: {exc}") from exc
        return cls.from_sitk(image, **ids)

    def ras_affine(self) -> np.ndarray:
        """The affine in RAS (NIfTI/nibabel) world coordinates."""
        return LPS_FROM_RAS @ self.affine


def affine_from_sitk(image: sitk.Image) -> np.ndarray:
    """The 4×4 LPS affine of a 3-D SimpleITK image (index order i, j, k)."""
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = direction * np.asarray(image.GetSpacing(), dtype=np.float64)
    affine[:3, 3] = image.GetOrigin()
    return affine


def make_affine(
    origin: Sequence[float], spacing: Sequence[float], direction: np.ndarray | None = None
) -> np.ndarray:
    """A 4×4 affine from an origin, spacings along i, j, k and a 3×3 direction (columns)."""
    direction = np.eye(3) if direction is None else np.asarray(direction, dtype=np.float64)
    affine = np.eye(4)
    affine[:3, :3] = direction * np.asarray(spacing, dtype=np.float64)
    affine[:3, 3] = origin
    return affine
