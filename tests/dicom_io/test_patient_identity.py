"""Fusion refuses what does not belong together: series of different patients in one study, and
a rigid registration whose similarity is implausible (the series do not show the same head)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from glioedge.dicom_io import fuse, load_study
from glioedge.dicom_io.fusion import MIN_REGISTRATION_NMI
from glioedge.dicom_io.uids import deterministic_uid
from glioedge.dicom_io.volume import Volume
from glioedge.errors import InputError
from glioedge.synth import synthetic_series
from glioedge.synth.dicom_writer import StudyInfo
from glioedge.synth.phantom import grid_affine, phantom_image

AFFINE = grid_affine((32, 32, 12), (5.0, 5.0, 8.0))


def _study(**t1ce_overrides: object) -> list:
    datasets = synthetic_series(phantom_image((32, 32, 12), AFFINE, "flair"), AFFINE, series_number=1,
                                overrides={"PatientBirthDate": "19800202"})
    datasets += synthetic_series(phantom_image((32, 32, 12), AFFINE, "t1ce"), AFFINE, modality="t1ce",
                                 series_number=2, overrides=t1ce_overrides)
    return datasets


@pytest.mark.parametrize(("overrides", "tags"), [
    ({"PatientID": "OTHER-0002"}, ["PatientID (0010,0020)"]),
    ({"PatientName": "OTHER^PERSON"}, ["PatientName (0010,0010)"]),
    ({"PatientBirthDate": "19700101", "PatientID": "OTHER-0002"},
     ["PatientID (0010,0020)", "PatientBirthDate (0010,0030)"]),
])
def test_series_of_different_patients_are_refused_naming_tags_not_values(
        overrides: dict[str, str], tags: list[str]) -> None:
    base = _study()
    base_values = {str(base[0].get(k, "")) for k in ("PatientID", "PatientName", "PatientBirthDate")}
    with pytest.raises(InputError) as info:
        load_study(_study(**overrides))
    message = str(info.value)
    assert all(tag in message for tag in tags), message
    assert "different patients" in message
    for value in [*overrides.values(), *base_values]:  # neither patient's values are quoted
        assert not value or value not in message, value


def test_same_patient_written_differently_or_anonymised_is_accepted() -> None:
    name = str(_study()[0].PatientName)
    assert load_study(_study(PatientName=name.lower() + "^^"))  # case and empty components
    assert load_study(_study(PatientID="", PatientBirthDate=None))  # absent: not a disagreement
    assert load_study(_study(PatientBirthDate="19800202"))


def test_implausible_registration_is_refused_not_fused() -> None:
    shape, spacing = (48, 56, 44), (3.0, 3.0, 3.0)
    affine = grid_affine(shape, spacing)
    fixed = Volume(phantom_image(shape, affine, "t1ce").astype(np.float32), affine,
                   frame_of_reference_uid="1.2.1")
    good = Volume(phantom_image(shape, grid_affine(shape, spacing, centre=(-6.0, 4.0, 0.0)), "flair")
                  .astype(np.float32), affine, frame_of_reference_uid="1.2.2")
    result = fuse({"t1ce": fixed, "flair": good}, register=True)
    assert result.transforms["flair"]["nmi"] >= MIN_REGISTRATION_NMI
    # the same FLAIR with its rows and columns shuffled: no head to align
    rng = np.random.default_rng(0)
    scrambled = good.array[rng.permutation(shape[0])][:, rng.permutation(shape[1])]
    bad = dataclasses.replace(good, array=np.ascontiguousarray(scrambled))
    with pytest.raises(InputError, match=r"registration of flair .* is implausible"):
        fuse({"t1ce": fixed, "flair": bad}, register=True)
    noise = dataclasses.replace(good, array=rng.normal(100, 30, shape).astype(np.float32))
    with pytest.raises(InputError, match="normalised mutual information"):
        fuse({"t1ce": fixed, "flair": noise}, register=True)


def test_registration_across_sessions_via_load_study_still_fuses() -> None:
    other = dataclasses.replace(StudyInfo(), frame_of_reference_uid=deterministic_uid("FoR 3"))
    affine2 = grid_affine((32, 32, 24), (5.0, 5.0, 5.0), "coronal")
    datasets = synthetic_series(phantom_image((32, 32, 12), AFFINE, "flair"), AFFINE, series_number=1)
    datasets += synthetic_series(phantom_image((32, 32, 24), affine2, "t1ce"), affine2,
                                 modality="t1ce", series_number=2, study=other)
    loaded = load_study(datasets, register=True)
    assert loaded.transforms["flair"]["nmi"] >= MIN_REGISTRATION_NMI
