"""Real DICOM in and out: MR series → fused volumes, label map → DICOM-SEG.

Owns reading patients' studies (discovery, headers, modality rules, series → volume, fusion,
patient identity, completeness), reading and writing DICOM-SEG (tumour and brain mask),
deterministic UIDs and the ``dciodvfy`` validator. Synthetic series and phantoms are not here:
they live in :mod:`glioedge.synth`, which this package never imports.

May import: of glioedge only errors, vocabulary and fileio, not the rest of
the floor below every package (``tests/test_architecture.py``); never PyTorch.
"""

from glioedge.dicom_io.discovery import DuplicateInstance, Series, Study, group_datasets, scan_folder
from glioedge.dicom_io.fusion import FusionResult, fuse, resample_to
from glioedge.dicom_io.headers import IgnoredFile
from glioedge.dicom_io.modality import (
    Modality,
    ModalityRules,
    ModalitySelection,
    identify_modalities,
    load_rules,
)
from glioedge.dicom_io.seg_read import read_seg
from glioedge.dicom_io.seg_write import write_seg
from glioedge.dicom_io.series import load_series, series_grid
from glioedge.dicom_io.study import LoadedStudy, load_study
from glioedge.dicom_io.uids import deterministic_uid
from glioedge.dicom_io.volume import Volume

__all__ = [
    "DuplicateInstance",
    "FusionResult",
    "IgnoredFile",
    "LoadedStudy",
    "Modality",
    "ModalityRules",
    "ModalitySelection",
    "Series",
    "Study",
    "Volume",
    "deterministic_uid",
    "fuse",
    "group_datasets",
    "identify_modalities",
    "load_rules",
    "load_series",
    "load_study",
    "read_seg",
    "resample_to",
    "scan_folder",
    "series_grid",
    "write_seg",
]
