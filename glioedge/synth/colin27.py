"""Colin27 (a real T1 head, 1 mm, with scalp) and its brain, and the same scan as DICOM series at
clinical geometries, for the brain-extraction evidence (tests/skullstrip/test_colin27.py,
bench/brain_extraction_colin27.py).

The reference brain is ``ch2bet.nii.gz`` (mricron's skull-stripped copy; FSL BET): its nonzero
voxels, holes filled (BET's mask is filled; a zero-valued voxel inside the brain is not a hole in
it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from glioedge.dicom_io import Volume, deterministic_uid
from glioedge.synth.dicom_writer import StudyInfo, write_synthetic_series
from glioedge.synth.geometry import ClinicalGeometry, clinical_grid, sample_on
from glioedge.synth.templates import colin27_paths

__all__ = ["COLIN27_STUDY", "colin27", "write_colin27_series"]

#: The study the Colin27 series are written into (a synthetic patient, not Colin's name).
COLIN27_STUDY = StudyInfo(
    study_instance_uid=deterministic_uid("colin27-study", 1),
    frame_of_reference_uid=deterministic_uid("colin27-frame-of-reference", 1),
    patient_name="TEMPLATE^COLIN27", patient_id="GLIOEDGE-COLIN27", accession_number="COLIN27",
)


def colin27() -> tuple[Volume, np.ndarray]:
    """The Colin27 T1 with scalp (LPS, 1 mm) and the reference brain mask on its grid.

    Raises:
        TemplateMissing: ``mricron-data`` is not installed.
    """
    paths = colin27_paths()
    t1 = Volume.from_nifti(paths["t1"], description="Colin27 T1")
    bet = Volume.from_nifti(paths["brain"])
    if not bet.same_grid(t1):
        raise ValueError("ch2bet.nii.gz is not on ch2.nii.gz's grid")  # never for mricron-data
    brain = ndimage.binary_fill_holes(np.asarray(bet.array) > 0)
    return t1.with_array(np.asarray(t1.array, np.float32)), brain


def write_colin27_series(root: Path | str, geometry: ClinicalGeometry, t1: Volume | None = None,
                         series_number: int = 1) -> Path:
    """Resample Colin27 onto ``geometry`` (:func:`~glioedge.synth.geometry.sample_on`) and write it
    as a T1 MR series under ``root/<geometry.name>``; returns that folder."""
    t1 = t1 if t1 is not None else colin27()[0]
    grid = clinical_grid(geometry, t1)
    vol = sample_on(t1, grid)
    array = np.round(np.clip(np.asarray(vol.array), 0, 4095)).astype(np.uint16)
    folder = Path(root) / geometry.name
    write_synthetic_series(folder, vol.with_array(array), modality="t1", series_number=series_number,
                           study=COLIN27_STUDY,
                           overrides={"SeriesDescription": f"Colin27 T1 {geometry.description}"[:64]})
    return folder
