"""BraTS reading, synthetic cases, preprocessing, patch sampling and augmentation.

The path of a case: :mod:`~glioedge.data.brats` (find and read) →
:mod:`~glioedge.data.preprocess` (crop, resample, z-score; shared with the runtime) →
:mod:`~glioedge.data.dataset` (preprocess a cohort to ``.npy``) →
:mod:`~glioedge.data.sampling` + :mod:`~glioedge.data.augment` →
:mod:`~glioedge.data.loader` (torch batches). :mod:`~glioedge.data.synthetic` makes BraTS-like
cases for tests and demos. Only ``loader`` imports torch.
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
