"""BraTS reading, the shared preprocessing, patch sampling, augmentation and the sliding window.

The path of a case: :mod:`~glioedge.data.brats` (find and read) →
:mod:`~glioedge.data.preprocess` (crop, resample, z-score; shared with the runtime) →
:mod:`~glioedge.data.dataset` (preprocess a cohort to ``.npy``) →
:mod:`~glioedge.data.sampling` + :mod:`~glioedge.data.augment` →
:mod:`~glioedge.data.loader` (torch batches). Only ``loader`` imports torch; the runtime may use
only ``preprocess``, ``sliding_window``, ``labels``, ``modalities`` and ``geometry``. Synthetic
BraTS-like cases are made in :mod:`glioedge.synth.cohort`, which this package never imports.

May import: the ground floor only (``tests/test_architecture.py``): errors, vocabulary,
_optional, config_keys, fileio, bundle and bundle_signing.
"""

from glioedge.data.labels import CLASS_NAMES, NUM_CLASSES, REGIONS, LabelConvention
from glioedge.data.modalities import (
    DEFAULT_STUDENT_MODALITIES,
    TEACHER_MODALITIES,
    Modality,
    parse_modalities,
)

__all__ = [
    "CLASS_NAMES",
    "DEFAULT_STUDENT_MODALITIES",
    "NUM_CLASSES",
    "REGIONS",
    "TEACHER_MODALITIES",
    "LabelConvention",
    "Modality",
    "parse_modalities",
]
