"""Synthetic and semi-synthetic cases and studies for the demo, the CLI, tests and benches — never
for the product's runtime.

Owns every way glioedge makes data that did not come from a patient:

* :mod:`.cohort`: deterministic BraTS-like cases (``make_case``), written as BraTS NIfTI folders
  (``generate_cohort``, the ``glioedge synth`` command); the contrast tables and cohort presets.
* :mod:`.phantom`: an analytic head phantom sampled on any grid (orientation, spacing).
* :mod:`.head_phantom`: skull, scalp, orbits, neck and noise around a skull-stripped brain.
* :mod:`.dicom_writer` (+ :mod:`.enhanced_dicom`): a volume as an MR series with realistic
  sequence headers (MR Image Storage or Enhanced MR Image Storage).
* :mod:`.geometry`: clinical acquisition grids (tilted 3-D sagittal, 2-D axial, coronal) and
  resampling a 1 mm volume onto them in physical space.
* :mod:`.templates`: where the public head templates live on this machine (Colin27 from Debian's
  ``mricron-data``, MNI152 2009 tissue maps from nilearn's wheel); never downloaded, never
  committed.
* :mod:`.colin27`, :mod:`.mni_case`: series and a semi-synthetic tumour study on real anatomy.

May import: the ground floor, ``data`` and ``dicom_io`` (``tests/test_architecture.py``).
Imported by the demo and the CLI (and tests and benches); the runtime, export, data, dicom_io
and train never import it.
"""

from glioedge.synth.dicom_writer import StudyInfo, synthetic_series, write_synthetic_series
from glioedge.synth.geometry import CLINICAL_GEOMETRIES, ClinicalGeometry, clinical_grid, sample_on
from glioedge.synth.templates import TemplateMissingError, colin27_paths, mni152_paths

__all__ = [
    "CLINICAL_GEOMETRIES",
    "ClinicalGeometry",
    "StudyInfo",
    "TemplateMissingError",
    "clinical_grid",
    "colin27_paths",
    "mni152_paths",
    "sample_on",
    "synthetic_series",
    "write_synthetic_series",
]
