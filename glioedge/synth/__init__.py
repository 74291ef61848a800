"""Synthetic and semi-synthetic data for the demo, tests and benches — never for the runtime or
export (tests/test_architecture.py enforces it).

* :mod:`.geometry`: clinical acquisition grids (tilted 3-D sagittal, 2-D axial, coronal) and
  resampling a 1 mm volume onto them in physical space.
* :mod:`.templates`: where the public head templates live on this machine (Colin27 from Debian's
  ``mricron-data``, MNI152 2009 tissue maps from nilearn's wheel); never downloaded, never
  committed.
* :mod:`.mni_case`: a semi-synthetic tumour case on real anatomy (MNI152 tissue maps, the
  ``brats-like`` contrast table, an analytic tumour, a head around it) written as a DICOM study.
"""

from glioedge.synth.geometry import CLINICAL_GEOMETRIES, ClinicalGeometry, clinical_grid, sample_on
from glioedge.synth.templates import TemplateMissingError, colin27_paths, mni152_paths

__all__ = [
    "CLINICAL_GEOMETRIES",
    "ClinicalGeometry",
    "TemplateMissingError",
    "clinical_grid",
    "colin27_paths",
    "mni152_paths",
    "sample_on",
]
