"""Fusion on the reference grid, rigid registration, and load_study end to end."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from glioedge.dicom_io import fuse, group_datasets, load_study
from glioedge.dicom_io.uids import deterministic_uid
from glioedge.dicom_io.volume import Volume
from glioedge.errors import InputError
from glioedge.synth import synthetic_series
from glioedge.synth.dicom_writer import StudyInfo
from glioedge.synth.phantom import grid_affine, phantom_image

from .conftest import T1CE_GRID


def test_load_study_fuses_on_t1ce_grid(study_folder: Path) -> None:
    loaded = load_study(study_folder)
    t1ce, flair = loaded.volumes["t1ce"], loaded.volumes["flair"]
    assert t1ce.same_grid(flair)
    expected_affine = grid_affine(T1CE_GRID["shape"], T1CE_GRID["spacing"], "sagittal")
    np.testing.assert_allclose(t1ce.affine, expected_affine, atol=1e-5)
    # FLAIR (12 mm axial slices) resampled onto the sagittal grid resembles the phantom there
    truth = phantom_image(t1ce.shape, t1ce.affine, "flair").astype(np.float32)
    inside = truth > 100
    assert np.corrcoef(flair.array[inside], truth[inside])[0, 1] > 0.6  # 12 mm slices blur
    assert loaded.series["flair"].series_number == 3
    assert flair.series_instance_uid == loaded.series["flair"].series_instance_uid
    json.dumps(loaded.to_dict())


def test_load_study_from_memory(study_folder: Path) -> None:
    import pydicom

    datasets = [pydicom.dcmread(p) for p in sorted(study_folder.rglob("*.dcm"))]
    loaded = load_study(datasets, reference="flair")
    assert loaded.volumes["t1ce"].shape == loaded.volumes["flair"].shape == (48, 44, 10)
    assert group_datasets(datasets)[0].series.keys() == {
        s.series_instance_uid for s in loaded.series.values()}


def test_reference_must_be_required(study_folder: Path) -> None:
    with pytest.raises(InputError, match="reference 't2' must be one of"):
        load_study(study_folder, reference="t2")


@pytest.mark.slow
def test_rigid_registration_across_frames_of_reference() -> None:
    shape, spacing = (48, 56, 44), (3.0, 3.0, 3.0)
    fixed_affine = grid_affine(shape, spacing)
    fixed = Volume(phantom_image(shape, fixed_affine, "t1ce").astype(np.float32), fixed_affine,
                   frame_of_reference_uid="1.2.1")
    # the other session: the head sits 6 mm further left, 4 mm anterior in its own coordinates
    shift = np.array([6.0, -4.0, 0.0])
    moving_affine = grid_affine(shape, spacing, centre=-shift)
    moving = Volume(phantom_image(shape, moving_affine, "t1").astype(np.float32),
                    grid_affine(shape, spacing), frame_of_reference_uid="1.2.2")
    with pytest.raises(InputError, match="frames of reference differ"):
        fuse({"t1ce": fixed, "t1": moving})
    result = fuse({"t1ce": fixed, "t1": moving}, register=True)
    translation = np.asarray(result.transforms["t1"]["parameters"][3:])
    np.testing.assert_allclose(translation, shift, atol=1.5)  # fixed → moving
    json.dumps(result.transforms)


def test_fusion_with_registration_via_load_study(tmp_path: Path) -> None:
    other = dataclasses.replace(StudyInfo(), frame_of_reference_uid=deterministic_uid("FoR 2"))
    affine = grid_affine((32, 32, 12), (5.0, 5.0, 8.0))
    datasets = synthetic_series(phantom_image((32, 32, 12), affine, "flair"), affine,
                                series_number=1)
    affine2 = grid_affine((32, 32, 24), (5.0, 5.0, 5.0), "coronal")
    datasets += synthetic_series(phantom_image((32, 32, 24), affine2, "t1ce"), affine2,
                                 modality="t1ce", series_number=2, study=other)
    loaded = load_study(datasets, register=True)
    assert "flair" in loaded.transforms
    assert np.linalg.norm(loaded.transforms["flair"]["parameters"][3:]) < 5.0
