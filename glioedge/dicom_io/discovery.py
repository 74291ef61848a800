"""Find the MR image series in a folder (recursively) or in a list of in-memory datasets.

Headers only: files are read with ``stop_before_pixels`` (:mod:`.headers`); pixel data is read
later, for the series that are used. Non-DICOM files, DICOMDIR indexes and non-image SOP classes
(structured reports, presentation states, segmentations, ...) are ignored, each with its reason
(:attr:`Study.ignored`). What remains is grouped by StudyInstanceUID and SeriesInstanceUID, and the
same SOPInstanceUID seen twice (a resend, or the study dropped twice) is kept once
(:attr:`Series.duplicates`); the two copies must agree in their geometry, and :func:`load_series`
checks that their pixel data is identical.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from glioedge.dicom_io.headers import NOT_DICOM, IgnoredFile, read_header, sop_class_name
from glioedge.dicom_io.sop_classes import ENHANCED_MR_IMAGE_STORAGE, IMAGE_SOP_CLASSES, MR_IMAGE_STORAGE
from glioedge.errors import InputError

__all__ = ["ENHANCED_MR_IMAGE_STORAGE", "IMAGE_SOP_CLASSES", "MR_IMAGE_STORAGE", "DuplicateInstance",
           "Series", "Study", "dataset_source", "group_datasets", "scan_folder", "single_study"]

logger = logging.getLogger(__name__)

#: Attributes two copies of one SOP instance must share (else they are not the same object).
_SAME_INSTANCE_KEYWORDS = ("SOPClassUID", "SeriesInstanceUID", "Rows", "Columns", "NumberOfFrames",
                           "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")


@dataclasses.dataclass
class DuplicateInstance:
    """A second copy of an instance (same SOPInstanceUID), left out of its series.

    Attributes:
        sop_instance_uid: The shared SOPInstanceUID.
        kept: Where the copy that is used came from.
        dropped: Where the left-out copy came from.
        dataset: The left-out copy (header; its pixel data is compared when the series is used).
        pixels: ``"not compared"`` until :func:`load_series` found them ``"identical"``
            (a difference is an :class:`InputError`).
    """

    sop_instance_uid: str
    kept: str
    dropped: str
    dataset: Dataset = dataclasses.field(repr=False)
    pixels: str = "not compared"

    def to_dict(self) -> dict[str, str]:
        """JSON-safe, without paths (they may carry patient names)."""
        return {"sop_instance_uid": self.sop_instance_uid, "pixels": self.pixels}


@dataclasses.dataclass
class Series:
    """The instances of one image series.

    Attributes:
        study_instance_uid: StudyInstanceUID shared by the instances.
        series_instance_uid: SeriesInstanceUID shared by the instances.
        datasets: The instances, one per SOPInstanceUID (headers from :func:`scan_folder`; pixel
            data is read from their files when the series is loaded).
        sources: Where each instance came from (a file path or ``<memory #n>``).
        duplicates: Further copies of instances already in ``datasets``.
    """

    study_instance_uid: str
    series_instance_uid: str
    datasets: list[Dataset] = dataclasses.field(default_factory=list)
    sources: list[str] = dataclasses.field(default_factory=list)
    duplicates: list[DuplicateInstance] = dataclasses.field(default_factory=list)

    @property
    def header(self) -> Dataset:
        """The first instance, for series-level attributes."""
        return self.datasets[0]

    @property
    def description(self) -> str:
        """SeriesDescription (or ProtocolName) — what a user sees in a viewer."""
        return str(self.header.get("SeriesDescription", "") or self.header.get("ProtocolName", ""))

    @property
    def series_number(self) -> int | None:
        """SeriesNumber, if set."""
        value = self.header.get("SeriesNumber")
        return None if value in (None, "") else int(value)

    def label(self) -> str:
        """A short human-readable name for messages: number, description and UID."""
        number = self.series_number
        prefix = f"#{number} " if number is not None else ""
        return f"series {prefix}'{self.description}' ({self.series_instance_uid})"


@dataclasses.dataclass
class Study:
    """The image series of one study, keyed by SeriesInstanceUID.

    Attributes:
        study_instance_uid: StudyInstanceUID.
        series: SeriesInstanceUID → series, in SeriesNumber order.
        ignored: What else was in the input (folder or datasets) and why it was not used.
    """

    study_instance_uid: str
    series: dict[str, Series] = dataclasses.field(default_factory=dict)
    ignored: list[IgnoredFile] = dataclasses.field(default_factory=list)

    @property
    def duplicates(self) -> list[DuplicateInstance]:
        """Every second copy of an instance, over all series."""
        return [d for s in self.series.values() for d in s.duplicates]

    def describe(self) -> str:
        """One line per series, for error messages."""
        return "; ".join(s.label() for s in self.series.values())


def scan_folder(folder: str | Path) -> list[Study]:
    """Read the headers of every file below ``folder`` and group the MR images by study and series.

    Pixel data is not read here (see :func:`glioedge.dicom_io.load_series`).

    Args:
        folder: Directory to scan recursively.

    Returns:
        The studies found, ordered by StudyInstanceUID; each lists the files ignored and why.

    Raises:
        InputError: the folder does not exist, holds no MR image, a file that is or may be an MR
            image cannot be read (e.g. its header is truncated), or two copies of one instance
            disagree.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"DICOM folder {folder} does not exist or is not a directory")
    datasets: list[Dataset] = []
    sources: list[str] = []
    ignored: list[IgnoredFile] = []
    n_files = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        n_files += 1
        header = read_header(path)
        if isinstance(header, IgnoredFile):
            logger.debug("skipping %s: %s", path, header.reason)
            ignored.append(header)
            continue
        datasets.append(header)
        sources.append(str(path))
    if not datasets:
        if all(i.reason == NOT_DICOM for i in ignored):
            raise InputError(f"no DICOM file found in {folder} ({n_files} files looked at, none "
                             "with a DICM preamble)")
        raise InputError(f"no MR image in {folder} ({n_files} files looked at): "
                         f"{_count_reasons(ignored)}")
    return group_datasets(datasets, sources, where=str(folder), ignored=ignored)


def dataset_source(ds: Dataset, n: int) -> str:
    """Where a dataset came from, for messages: its file when pydicom read it from one."""
    filename = getattr(ds, "filename", None)
    return str(filename) if isinstance(filename, str) and filename else f"<memory #{n}>"


def group_datasets(
    datasets: Iterable[Dataset], sources: Sequence[str] | None = None, where: str = "input",
    ignored: Sequence[IgnoredFile] = (),
) -> list[Study]:
    """Group in-memory datasets by study and series, keeping MR images only, each instance once.

    Args:
        datasets: pydicom datasets (files already read, headers only, or received over the network).
        sources: Where each dataset came from, for messages; default its file or ``<memory #n>``.
        where: What the datasets are, for messages.
        ignored: Files already ignored by the caller (e.g. not DICOM), kept in ``Study.ignored``.

    Returns:
        The studies found, ordered by StudyInstanceUID; series in order of SeriesNumber.

    Raises:
        InputError: no MR image among the datasets, one lacks its study or series UID, or two
            copies of one SOPInstanceUID differ in series or geometry.
    """
    datasets = list(datasets)
    sources = list(sources) if sources is not None else [
        dataset_source(ds, n) for n, ds in enumerate(datasets)]
    studies: dict[str, Study] = {}
    ignored = list(ignored)
    first_copy: dict[tuple[str, str], tuple[Dataset, str]] = {}
    for ds, source in zip(datasets, sources, strict=True):
        sop_class = str(ds.get("SOPClassUID", ""))
        if sop_class not in IMAGE_SOP_CLASSES:
            name = sop_class_name(sop_class) or "no SOPClassUID"
            logger.debug("skipping %s: SOP class %s is not an MR image", source, name)
            ignored.append(IgnoredFile(source, f"SOP class {name} is not an MR image", name,
                                       str(ds.get("SOPInstanceUID", ""))))
            continue
        study_uid = str(ds.get("StudyInstanceUID", ""))
        series_uid = str(ds.get("SeriesInstanceUID", ""))
        if not study_uid or not series_uid:
            raise InputError(
                f"{source}: MR image without StudyInstanceUID or SeriesInstanceUID (0020,000D/E)"
            )
        study = studies.setdefault(study_uid, Study(study_uid))
        series = study.series.setdefault(series_uid, Series(study_uid, series_uid))
        sop_uid = str(ds.get("SOPInstanceUID", ""))
        if sop_uid and (study_uid, sop_uid) in first_copy:
            kept, kept_source = first_copy[study_uid, sop_uid]
            _check_same_instance(kept, kept_source, ds, source, sop_uid)
            series.duplicates.append(DuplicateInstance(sop_uid, kept_source, source, ds))
            logger.debug("%s: second copy of SOPInstanceUID %s (first: %s), kept once", source,
                         sop_uid, kept_source)
            continue
        if sop_uid:
            first_copy[study_uid, sop_uid] = (ds, source)
        series.datasets.append(ds)
        series.sources.append(source)
    if not studies:
        raise InputError(f"no MR image (MR or Enhanced MR Image Storage) in {where}; found "
                         f"{_count_reasons(ignored, by_class=True)}")
    for study in studies.values():
        study.ignored = list(ignored)
        study.series = dict(sorted(
            study.series.items(),
            key=lambda item: (item[1].series_number is None, item[1].series_number or 0, item[0]),
        ))
        n_dup = len(study.duplicates)
        logger.debug("study %s: %s", study.study_instance_uid, study.describe())
        if n_dup or ignored:
            logger.info("study %s: %d series; %d duplicate instance(s) kept once; ignored: %s",
                        study.study_instance_uid, len(study.series), n_dup,
                        _count_reasons(ignored))
    return [studies[uid] for uid in sorted(studies)]


def _count_reasons(ignored: Sequence[IgnoredFile], by_class: bool = False) -> str:
    """``2× not a DICOM file (...), 1× SOP class ... is not an MR image`` (no paths)."""
    if by_class:
        counts = Counter(i.sop_class or "no SOPClassUID" for i in ignored)
    else:
        counts = Counter(i.reason for i in ignored)
    return ", ".join(f"{n}× {what}" for what, n in counts.most_common()) or "nothing"


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    try:
        return bool(np.allclose(np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel(),
                                atol=1e-4))
    except (TypeError, ValueError):
        return str(a) == str(b)


def _check_same_instance(kept: Dataset, kept_source: str, other: Dataset, source: str,
                         sop_uid: str) -> None:
    for keyword in _SAME_INSTANCE_KEYWORDS:
        a, b = kept.get(keyword), other.get(keyword)
        if not _same(a, b):
            raise InputError(
                f"SOPInstanceUID {sop_uid} is in two files that differ in {keyword}: {kept_source} "
                f"({a}) and {source} ({b}); expected a resent copy to be the same instance")


def single_study(studies: Sequence[Study], where: str = "input") -> Study:
    """The one study among ``studies``.

    Raises:
        InputError: there are several studies (a mixed folder), naming them.
    """
    if len(studies) != 1:
        listing = " | ".join(
            f"study {s.study_instance_uid}: {s.describe()}" for s in studies
        )
        raise InputError(
            f"{where} holds {len(studies)} studies, expected exactly one: {listing}"
        )
    return studies[0]
