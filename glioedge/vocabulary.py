"""The one home of glioedge's closed vocabularies: classes, regions, label maps, SEG codes and
colours, modality names and the sliding-window defaults.

Plain data and ``str`` Enums only; imports nothing of glioedge and nothing outside the standard
library, so every part — ``dicom_io`` included — may read it. Change a class, a code, a colour or
a default here and every stage (training, export manifest, runtime, DICOM-SEG, SR, QA picture)
follows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Final

__all__ = [
    "BACKGROUND",
    "BRAIN_SEGMENT",
    "BRAIN_SEG_CATEGORY",
    "CLASS_NAMES",
    "DEFAULT_STUDENT_MODALITIES",
    "ED",
    "ET",
    "LABEL_MAPS",
    "NCR",
    "NUM_CLASSES",
    "REGIONS",
    "REGION_DESCRIPTIONS",
    "SEGMENTS",
    "SEG_ANATOMY",
    "SEG_CATEGORY",
    "TEACHER_MODALITIES",
    "VOLUME_CLASSES",
    "WINDOW_STEP",
    "Code",
    "LabelConvention",
    "Modality",
    "SegmentSpec",
]

# -- modalities ----------------------------------------------------------------------------------


class Modality(str, Enum):
    """The four BraTS MR sequences (names as in BraTS 2018–2021 file names)."""

    T1 = "t1"
    T2 = "t2"
    FLAIR = "flair"
    T1CE = "t1ce"

    def __str__(self) -> str:
        return self.value


#: Channel order of the teacher network (all four sequences).
TEACHER_MODALITIES: Final[tuple[Modality, ...]] = (Modality.T1, Modality.T2, Modality.FLAIR, Modality.T1CE)
#: Default channel order of the student network.
DEFAULT_STUDENT_MODALITIES: Final[tuple[Modality, ...]] = (Modality.FLAIR, Modality.T1CE)

# -- classes, regions, label maps ----------------------------------------------------------------

#: Internal class indices.
BACKGROUND, NCR, ED, ET = 0, 1, 2, 3
#: Internal class names, indexed by class.
CLASS_NAMES: Final[tuple[str, ...]] = ("background", "NCR", "ED", "ET")
NUM_CLASSES: Final[int] = len(CLASS_NAMES)
#: Evaluation regions (BraTS) as sets of internal classes.
REGIONS: Final = MappingProxyType({"WT": (NCR, ED, ET), "TC": (NCR, ET), "ET": (ET,)})
#: Human-readable region names (report, SR).
REGION_DESCRIPTIONS: Final = MappingProxyType({
    "WT": "whole tumour (NCR + ED + ET)", "TC": "tumour core (NCR + ET)", "ET": "enhancing tumour"})
#: Reported volumes: name → internal classes (the regions, then the single tumour classes).
VOLUME_CLASSES: Final = MappingProxyType({
    "ET": (ET,), "TC": (NCR, ET), "WT": (NCR, ED, ET), "NCR": (NCR,), "ED": (ED,)})


class LabelConvention(str, Enum):
    """How a segmentation file encodes the classes."""

    BRATS2021 = "brats2021"  # 0, 1, 2, 4
    BRATS2023 = "brats2023"  # 0, 1, 2, 3

    def __str__(self) -> str:
        return self.value


#: File value → internal class, per convention.
LABEL_MAPS: Final = MappingProxyType({
    LabelConvention.BRATS2021: MappingProxyType({0: BACKGROUND, 1: NCR, 2: ED, 4: ET}),
    LabelConvention.BRATS2023: MappingProxyType({0: BACKGROUND, 1: NCR, 2: ED, 3: ET}),
})

# -- DICOM-SEG codes and colours -----------------------------------------------------------------


@dataclass(frozen=True)
class Code:
    """A coded concept as plain data (``highdicom.sr.CodedConcept(*code)`` builds the DICOM one)."""

    value: str
    scheme: str
    meaning: str

    def __iter__(self) -> Iterator[str]:
        """``value, scheme, meaning``: lets callers write ``CodedConcept(*code)``."""
        return iter((self.value, self.scheme, self.meaning))


@dataclass(frozen=True)
class SegmentSpec:
    """One DICOM-SEG segment: its internal class, label, property type, tracking text and colour."""

    label: str
    property_type: Code
    tracking: str
    rgb: tuple[int, int, int]


#: Segmented property category of every segment.
SEG_CATEGORY: Final = Code("49755003", "SCT", "Morphologically Abnormal Structure")
#: Anatomic region of every segment.
SEG_ANATOMY: Final = Code("12738006", "SCT", "Brain")
#: Internal class (= SEG segment number) → segment. The colours are the QA picture's too.
SEGMENTS: Final = MappingProxyType({
    NCR: SegmentSpec("NCR", Code("6574001", "SCT", "Necrosis"), "necrotic core", (230, 40, 40)),
    ED: SegmentSpec("ED", Code("79654002", "SCT", "Edema"), "peritumoral edema", (40, 200, 60)),
    ET: SegmentSpec("ET", Code("C113842", "NCIt", "Enhancing Lesion"), "enhancing tumour",
                    (250, 230, 30)),
})

#: The brain mask as a SEG segment (``--save-brain-mask seg``), in a SEG of its own: category
#: SCT 91723000 Anatomical Structure, type SCT 12738006 Brain; colour as 3D Slicer's brain.
BRAIN_SEG_CATEGORY: Final = Code("91723000", "SCT", "Anatomical Structure")
BRAIN_SEGMENT: Final = SegmentSpec("Brain", Code("12738006", "SCT", "Brain"), "brain mask",
                                   (250, 250, 225))

# -- sliding window ------------------------------------------------------------------------------

#: Window step as a fraction of the patch (nnU-Net: 0.5, i.e. windows overlap by half). The window
#: size itself is the bundle's patch size (``manifest.patch_size``, from the training plan).
WINDOW_STEP: Final[float] = 0.5
