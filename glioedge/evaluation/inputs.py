"""Find the cases of ``glioedge evaluate`` and pair prediction with reference.

Two kinds of folder (both sides must be the same kind):

- **NIfTI** label maps with BraTS names, anywhere below the folder. The case id is the file name
  without ``.nii(.gz)`` and without a trailing ``-seg``/``_seg`` (or ``pred``, ``label``...):
  ``BraTS2021_00000/BraTS2021_00000_seg.nii.gz`` pairs with ``BraTS2021_00000.nii.gz`` and
  ``BraTS-GLI-00000-000-seg.nii.gz`` with ``BraTS-GLI-00000-000.nii.gz``. Image files (``t1``,
  ``t2``, ``flair``, ``t1ce``, ``t1c``, ``t1n``, ``t2w``, ``t2f``; anything in nnU-Net's
  ``imagesTr``/``imagesTs``) are skipped, so an nnU-Net dataset's ``labelsTr`` pairs as it is.
- **DICOM** studies: the DICOM-SEG instances below the folder (other instances are ignored),
  paired by their Study Instance UID; both must share the Frame of Reference.

A reference case without a prediction is an error (an acceptance run must be complete); a
prediction without a reference is logged and left out.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from glioedge.errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["CasePair", "find_cases"]

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
_NIFTI = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)
_LABEL_SUFFIX = re.compile(r"[-_.](seg|pred|prediction|label|labels|mask)$", re.IGNORECASE)
_IMAGE_SUFFIX = re.compile(r"[-_.](t1|t2|flair|t1ce|t1c|t1n|t2w|t2f)$", re.IGNORECASE)
#: nnU-Net raw datasets keep the images (``case_0000.nii.gz``) in these folders, labels elsewhere.
_IMAGE_FOLDERS = frozenset({"imagestr", "imagests", "imagesval"})


@dataclass(frozen=True)
class CasePair:
    """One case: its id and how to load each side as a label-map volume (classes 0..3)."""

    case_id: str
    pred_source: str
    truth_source: str
    load_pred: Callable[[], object]
    load_truth: Callable[[], object]


def _kind(folder: Path, what: str) -> str:
    if not folder.is_dir():
        raise InputError(f"{what} {folder} is not a folder")
    files = [p for p in folder.rglob("*") if p.is_file()]
    if not files:
        raise InputError(f"{what} {folder} holds no files")
    return "nifti" if any(_NIFTI.search(p.name) for p in files) else "dicom"


def _nifti_cases(folder: Path, what: str) -> dict[str, Path]:
    cases: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or not _NIFTI.search(path.name):
            continue
        stem = _NIFTI.sub("", path.name)
        if _IMAGE_SUFFIX.search(stem) or path.parent.name.lower() in _IMAGE_FOLDERS:
            continue
        case_id = _LABEL_SUFFIX.sub("", stem)
        if case_id in cases:
            raise InputError(f"{what}: two label maps for case {case_id!r}: {cases[case_id]} and {path}")
        cases[case_id] = path
    if not cases:
        raise InputError(f"{what} {folder}: no NIfTI label maps (image files such as *_flair.nii.gz "
                         f"are skipped)")
    return cases


def _seg_cases(folder: Path, what: str) -> dict[str, Path]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    cases: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True,
                                 specific_tags=["SOPClassUID", "StudyInstanceUID"])
        except (InvalidDicomError, OSError, ValueError, EOFError):
            continue
        if str(ds.get("SOPClassUID", "")) != SEG_SOP_CLASS:
            continue
        study = str(ds.get("StudyInstanceUID", ""))
        if not study:
            raise InputError(f"{what}: DICOM-SEG {path} has no StudyInstanceUID")
        if study in cases:
            raise InputError(f"{what}: two DICOM-SEGs for study {study}: {cases[study]} and {path}; "
                             f"keep one per study")
        cases[study] = path
    if not cases:
        raise InputError(f"{what} {folder}: no DICOM-SEG instances (SOP Class {SEG_SOP_CLASS}) found")
    return cases


def _nifti_loader(path: Path, convention: str) -> Callable[[], object]:
    def load() -> object:
        import numpy as np

        from glioedge.data.labels import to_internal
        from glioedge.dicom_io.volume import Volume

        volume = Volume.from_nifti(path)
        data = volume.array
        if not np.issubdtype(data.dtype, np.integer):
            rounded = np.round(data)
            if not np.array_equal(rounded, data):
                raise InputError(f"{path}: label values are not integers")
            data = rounded.astype(np.int64)
        return volume.with_array(to_internal(data, convention, source=str(path)))

    return load


def _seg_loader(path: Path, segment_classes: Mapping[str, int] | None) -> Callable[[], object]:
    def load() -> object:
        from glioedge.dicom_io.seg_read import read_seg

        return read_seg(path, segment_classes=segment_classes)

    return load


def find_cases(pred: Path, truth: Path, *, convention: str = "brats2023",
               segment_classes: Mapping[str, int] | None = None) -> list[CasePair]:
    """Pair every reference case with its prediction.

    Args:
        pred: folder of predictions.
        truth: folder of reference segmentations.
        convention: label convention of NIfTI label maps (``brats2021`` or ``brats2023``).
        segment_classes: a site's segment mapping for the reference SEGs (from
            :func:`~glioedge.evaluation.segment_map.load_segment_map`); glioedge's own SEGs need none.

    Returns:
        The pairs, sorted by case id.

    Raises:
        InputError: a folder is missing or empty, the two are of different kinds, a case appears
            twice, or a reference case has no prediction.
    """
    kind_p, kind_t = _kind(Path(pred), "--pred"), _kind(Path(truth), "--truth")
    if kind_p != kind_t:
        raise InputError(f"--pred holds {kind_p.upper()} and --truth {kind_t.upper()}: both must be "
                         f"NIfTI label maps or both DICOM studies with DICOM-SEGs")
    if kind_t == "nifti":
        preds, truths = _nifti_cases(Path(pred), "--pred"), _nifti_cases(Path(truth), "--truth")
    else:
        preds, truths = _seg_cases(Path(pred), "--pred"), _seg_cases(Path(truth), "--truth")
    missing = sorted(set(truths) - set(preds))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        what = "case" if kind_t == "nifti" else "study"
        raise InputError(f"no prediction in --pred {pred} for {len(missing)} reference {what}(s): {shown}")
    extra = sorted(set(preds) - set(truths))
    if extra:
        logger.warning("%d prediction(s) without a reference are left out: %s", len(extra),
                       ", ".join(extra[:5]))
    pairs = []
    for case_id in sorted(truths):
        if kind_t == "nifti":
            lp, lt = _nifti_loader(preds[case_id], convention), _nifti_loader(truths[case_id], convention)
        else:
            lp, lt = _seg_loader(preds[case_id], None), _seg_loader(truths[case_id], segment_classes)
        pairs.append(CasePair(case_id, str(preds[case_id]), str(truths[case_id]), lp, lt))
    return pairs
