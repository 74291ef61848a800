"""Find the MR image series in a folder (recursively) or in a list of in-memory datasets.

Non-DICOM files and non-image SOP classes (structured reports, presentation states, key object
selections, segmentations, ...) are skipped with a debug log. What remains is grouped by
StudyInstanceUID and SeriesInstanceUID.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.misc import is_dicom

from glioedge.errors import InputError

logger = logging.getLogger(__name__)

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
#: SOP classes this package turns into volumes.
IMAGE_SOP_CLASSES = {
    MR_IMAGE_STORAGE: "MR Image Storage",
    ENHANCED_MR_IMAGE_STORAGE: "Enhanced MR Image Storage",
}


@dataclasses.dataclass
class Series:
    """The instances of one image series.

    Attributes:
        study_instance_uid: StudyInstanceUID shared by the instances.
        series_instance_uid: SeriesInstanceUID shared by the instances.
        datasets: The instances (pixel data loaded on demand by pydicom).
        sources: Where each instance came from (a file path or ``<memory #n>``).
    """

    study_instance_uid: str
    series_instance_uid: str
    datasets: list[Dataset] = dataclasses.field(default_factory=list)
    sources: list[str] = dataclasses.field(default_factory=list)

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
    """The image series of one study, keyed by SeriesInstanceUID."""

    study_instance_uid: str
    series: dict[str, Series] = dataclasses.field(default_factory=dict)

    def describe(self) -> str:
        """One line per series, for error messages."""
        return "; ".join(s.label() for s in self.series.values())


def scan_folder(folder: str | Path) -> list[Study]:
    """Read every DICOM image file below ``folder`` and group it by study and series.

    Args:
        folder: Directory to scan recursively.

    Returns:
        The studies found, ordered by StudyInstanceUID.

    Raises:
        InputError: the folder does not exist, holds no MR image, or a file that announces itself
            as DICOM cannot be read (e.g. it is truncated).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"DICOM folder {folder} does not exist or is not a directory")
    datasets: list[Dataset] = []
    sources: list[str] = []
    n_files = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        n_files += 1
        if not is_dicom(path):
            logger.debug("skipping %s: not a DICOM file (no DICM preamble)", path)
            continue
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, EOFError, OSError, ValueError, KeyError) as exc:
            raise InputError(
                f"file {path} starts like DICOM but cannot be read (truncated or corrupt): {exc}"
            ) from exc
        if "SOPClassUID" not in ds:
            raise InputError(f"file {path} has a DICOM preamble but no SOPClassUID (0008,0016): "
                             "truncated or not a composite object")
        datasets.append(ds)
        sources.append(str(path))
    if not datasets:
        raise InputError(
            f"no DICOM file found in {folder} ({n_files} files looked at, none with a DICM preamble)"
        )
    return group_datasets(datasets, sources, where=str(folder))


def dataset_source(ds: Dataset, n: int) -> str:
    """Where a dataset came from, for messages: its file when pydicom read it from one."""
    filename = getattr(ds, "filename", None)
    return str(filename) if isinstance(filename, str) and filename else f"<memory #{n}>"


def group_datasets(
    datasets: Iterable[Dataset], sources: Sequence[str] | None = None, where: str = "input"
) -> list[Study]:
    """Group in-memory datasets by study and series, keeping MR images only.

    Args:
        datasets: pydicom datasets (files already read, or received over the network).
        sources: Where each dataset came from, for messages; default ``<memory #n>``.
        where: What the datasets are, for messages.

    Returns:
        The studies found, ordered by StudyInstanceUID; series in order of SeriesNumber.

    Raises:
        InputError: no MR image among the datasets, or one lacks its study or series UID.
    """
    datasets = list(datasets)
    sources = list(sources) if sources is not None else [
        dataset_source(ds, n) for n, ds in enumerate(datasets)]
    studies: dict[str, Study] = {}
    skipped: dict[str, int] = {}
    for ds, source in zip(datasets, sources, strict=True):
        sop_class = str(ds.get("SOPClassUID", ""))
        if sop_class not in IMAGE_SOP_CLASSES:
            name = getattr(ds.get("SOPClassUID"), "name", sop_class) or "no SOPClassUID"
            logger.debug("skipping %s: SOP class %s is not an MR image", source, name)
            skipped[name] = skipped.get(name, 0) + 1
            continue
        study_uid = str(ds.get("StudyInstanceUID", ""))
        series_uid = str(ds.get("SeriesInstanceUID", ""))
        if not study_uid or not series_uid:
            raise InputError(
                f"{source}: MR image without StudyInstanceUID or SeriesInstanceUID (0020,000D/E)"
            )
        study = studies.setdefault(study_uid, Study(study_uid))
        series = study.series.setdefault(series_uid, Series(study_uid, series_uid))
        series.datasets.append(ds)
        series.sources.append(source)
    if not studies:
        found = ", ".join(f"{n}× {name}" for name, n in skipped.items()) or "nothing"
        raise InputError(f"no MR image (MR or Enhanced MR Image Storage) in {where}; found {found}")
    for study in studies.values():
        study.series = dict(sorted(
            study.series.items(),
            key=lambda item: (item[1].series_number is None, item[1].series_number or 0, item[0]),
        ))
        logger.debug("study %s: %s", study.study_instance_uid, study.describe())
    return [studies[uid] for uid in sorted(studies)]


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
