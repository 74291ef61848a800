"""Read what a file is from its header alone (no pixel data), and its pixel data later, on demand.

Intake reads headers first (``stop_before_pixels``) and decodes pixel data only for the series
it uses (:func:`instance_pixels`), so a study with diffusion, perfusion and localisers is never
decoded whole. A file is then one of:

* a dataset to group (any composite object; :func:`glioedge.dicom_io.group_datasets` keeps the
  MR images and lists the rest as ignored),
* an :class:`IgnoredFile` with its reason: not DICOM, a DICOMDIR (an index of a file-set, whose
  files are found by scanning the folder anyway), or an unreadable object that identifies itself
  (file meta) as something other than an MR image, or
* an :class:`InputError`: a file that is, or may be, an MR image but whose header cannot be read
  (its file meta says MR, or the reader failed before anything said what it is). Ignoring it could
  silently drop a slice, so the study fails, naming the file.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.filereader import read_file_meta_info
from pydicom.misc import is_dicom
from pydicom.uid import UID

from glioedge.dicom_io.sop_classes import IMAGE_SOP_CLASSES, MEDIA_STORAGE_DIRECTORY
from glioedge.errors import InputError

logger = logging.getLogger(__name__)

#: Elements holding pixel data (any of them means the dataset carries its pixels in memory).
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
#: The reason given for a file without the DICM preamble.
NOT_DICOM = "not a DICOM file (no DICM preamble at byte 128)"


@dataclasses.dataclass(frozen=True)
class IgnoredFile:
    """A file (or dataset) intake looked at and did not use, and why.

    Attributes:
        source: The file (or ``<memory #n>``); for messages, never for reports (paths may carry PHI).
        reason: Why it was ignored, e.g. ``"not a DICOM file (no DICM preamble at byte 128)"``.
        sop_class: The SOP class's name when known.
        sop_instance_uid: Its SOPInstanceUID when known.
    """

    source: str
    reason: str
    sop_class: str = ""
    sop_instance_uid: str = ""

    def to_dict(self) -> dict[str, str]:
        """JSON-safe, without the path."""
        return {"reason": self.reason, "sop_class": self.sop_class,
                "sop_instance_uid": self.sop_instance_uid}


def sop_class_name(uid: str) -> str:
    """``MR Image Storage`` for its UID; the UID itself when pydicom does not know it."""
    if not uid:
        return ""
    name = UID(uid).name
    return str(name) if name else uid


def read_header(path: str | Path) -> Dataset | IgnoredFile:
    """The header (no pixel data) of a file, or why the file is ignored.

    Raises:
        InputError: the file cannot be opened, or it is (or may be) an MR image whose header cannot
            be read; the message names the file and what is wrong.
    """
    path = Path(path)
    try:
        if not is_dicom(path):
            return IgnoredFile(str(path), NOT_DICOM)
    except OSError as exc:
        raise InputError(f"file {path} cannot be opened: {exc}") from exc
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:  # any reader failure on third-party bytes: unreadable
        return _unreadable(path, f"{type(exc).__name__}: {exc}")
    meta_class = str(ds.file_meta.get("MediaStorageSOPClassUID", "")) if ds.file_meta else ""
    if meta_class == MEDIA_STORAGE_DIRECTORY or "DirectoryRecordSequence" in ds:
        return IgnoredFile(str(path), dicomdir_reason(ds), sop_class_name(MEDIA_STORAGE_DIRECTORY),
                           str(ds.file_meta.get("MediaStorageSOPInstanceUID", "")))
    if "SOPClassUID" not in ds:
        # Elements are stored in tag order: one after (0008,0016) means it is absent, not cut off.
        later = max(map(int, ds.keys()), default=0) > 0x00080016
        if later or not meta_class:  # read cleanly, and nothing says it is an image
            why = "though later elements are present" if later else \
                "nor MediaStorageSOPClassUID (0002,0002)"
            return IgnoredFile(str(path), f"no SOPClassUID (0008,0016) {why}: not a composite "
                               "object", sop_class_name(meta_class))
        return _unreadable(path, "no SOPClassUID (0008,0016): truncated or not a composite object",
                           meta_class)
    return ds


def _unreadable(path: Path, why: str, claimed: str | None = None) -> IgnoredFile:
    """A file whose header is unusable: ignored when its file meta says it is not an MR image."""
    if claimed is None:
        try:
            claimed = str(read_file_meta_info(path).get("MediaStorageSOPClassUID", ""))
        except Exception:  # no readable file meta either: the class is unknown
            claimed = ""
    if claimed and claimed not in IMAGE_SOP_CLASSES:
        name = sop_class_name(claimed)
        logger.debug("ignoring %s: %s header unreadable (%s)", path, name, why)
        return IgnoredFile(str(path), f"unreadable header of a non-MR object ({why})", name)
    what = (f"its file meta says {IMAGE_SOP_CLASSES[claimed]}" if claimed
            else "no MediaStorageSOPClassUID (0002,0002) says what it is, so it may be an MR image")
    raise InputError(f"file {path} has a DICOM preamble but its header cannot be read: {why}; "
                     f"{what}, and ignoring it could drop a slice (expected a complete DICOM file)")


def dicomdir_reason(ds: Dataset) -> str:
    """Why a DICOMDIR is ignored, with how many of the files it lists are missing from disk.

    Reads the directory records' ReferencedFileID (0004,1500) directly, so that a malformed index
    (which pydicom's FileSet refuses) is still ignored rather than fatal; names compare without
    case, as CD file systems are often mounted lower-cased.
    """
    base = "DICOMDIR (Media Storage Directory): an index of the file-set, not an image"
    filename = getattr(ds, "filename", None)
    if not isinstance(filename, str) or not filename:
        return base
    listed = []
    for record in ds.get("DirectoryRecordSequence") or []:
        file_id = record.get("ReferencedFileID")
        if file_id:
            parts = [file_id] if isinstance(file_id, str) else list(file_id)
            listed.append("/".join(str(p).strip() for p in parts).lower())
    if not listed:
        return f"{base}; lists no file"
    root = Path(filename).parent
    present = {p.relative_to(root).as_posix().lower() for p in root.rglob("*") if p.is_file()}
    missing = sum(1 for name in listed if name not in present)
    detail = f"; lists {len(listed)} file(s)"
    if missing:
        detail += f", {missing} of them missing from the folder (incomplete export?)"
        logger.warning("DICOMDIR lists %d file(s), %d missing from the folder", len(listed), missing)
    return base + detail


def has_pixels(ds: Dataset) -> bool:
    """Whether the dataset carries its pixel data in memory."""
    return any(k in ds for k in PIXEL_KEYWORDS)


def instance_pixels(ds: Dataset, source: str) -> np.ndarray:
    """The stored pixel values of one instance (all frames), decoded.

    A dataset with pixel data in memory is decoded as is; a header read without pixel data
    (``stop_before_pixels``) is completed from its file, which must still hold the same instance.

    Raises:
        InputError: no pixel data, the file is gone or changed, or the data cannot be decoded.
    """
    if has_pixels(ds):
        return _decode(ds, source)
    filename = getattr(ds, "filename", None)
    if not isinstance(filename, str) or not filename:
        raise InputError(f"{source}: no pixel data (7FE0,0010) in the dataset and no file to read "
                         "it from")
    try:
        full = pydicom.dcmread(filename)
    except FileNotFoundError as exc:
        raise InputError(f"{source}: the file disappeared before its pixel data was read") from exc
    except Exception as exc:  # any reader failure: the file is bad, name it
        raise InputError(f"{source}: pixel data cannot be read (truncated or corrupt file): "
                         f"{type(exc).__name__}: {exc}") from exc
    expected = str(ds.get("SOPInstanceUID", ""))
    found = str(full.get("SOPInstanceUID", ""))
    if found != expected:
        raise InputError(f"{source}: the file changed since its header was read: SOPInstanceUID "
                         f"(0008,0018) is now {found!r}, expected {expected!r}")
    if not has_pixels(full):
        raise InputError(f"{source}: no pixel data (7FE0,0010) in the file")
    return _decode(full, source)


def _decode(ds: Dataset, source: str) -> np.ndarray:
    try:
        return ds.pixel_array
    except Exception as exc:  # decoder plugins raise many types; name the file
        raise InputError(f"{source}: pixel data cannot be decoded (truncated file, or transfer "
                         f"syntax without a decoder?): {type(exc).__name__}: {exc}") from exc
