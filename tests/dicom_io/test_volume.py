"""Volume ↔ SimpleITK and NIfTI (RAS), checked against nibabel as an independent reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glioedge.dicom_io.volume import Volume
from glioedge.errors import InputError
from glioedge.synth.phantom import grid_affine


@pytest.mark.parametrize("orientation", ["axial", "sagittal", "oblique"])
def test_sitk_round_trip(orientation: str) -> None:
    affine = grid_affine((5, 6, 7), (0.9, 1.1, 5.0), orientation)
    array = np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    volume = Volume(array, affine, series_instance_uid="1.2.3")
    image = volume.to_sitk()
    assert image.GetSize() == (5, 6, 7)
    # the physical point of voxel (1, 2, 3) agrees with the affine
    np.testing.assert_allclose(image.TransformIndexToPhysicalPoint((1, 2, 3)),
                               (affine @ [1, 2, 3, 1])[:3], atol=1e-9)
    back = Volume.from_sitk(image, **volume.ids())
    np.testing.assert_array_equal(back.array, array)
    np.testing.assert_allclose(back.affine, affine, atol=1e-9)
    assert back.series_instance_uid == "1.2.3"


def test_nifti_is_ras_on_disk(tmp_path: Path) -> None:
    nibabel = pytest.importorskip("nibabel")
    affine = grid_affine((4, 5, 6), (1.0, 2.0, 3.0), "oblique", centre=(10.0, -20.0, 30.0))
    volume = Volume(np.random.default_rng(0).random((4, 5, 6)).astype(np.float32), affine)
    path = volume.to_nifti(tmp_path / "v.nii.gz")
    image = nibabel.load(path)
    np.testing.assert_allclose(image.affine, volume.ras_affine(), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(image.dataobj), volume.array)
    back = Volume.from_nifti(path)
    np.testing.assert_allclose(back.affine, affine, atol=1e-4)
    np.testing.assert_array_equal(back.array, volume.array)


def test_bad_volumes(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="3-D"):
        Volume(np.zeros((2, 2)), np.eye(4))
    with pytest.raises(InputError, match="singular"):
        Volume(np.zeros((2, 2, 2)), np.diag([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(InputError, match="does not exist"):
        Volume.from_nifti(tmp_path / "missing.nii.gz")
