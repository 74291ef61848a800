"""Watch the inbox: group files into studies by header, decide when a study is complete.

The scan is the source of truth and runs every ``poll_interval`` seconds (so network shares,
where filesystem events are unreliable, work); watchdog events, when available, only make the
next scan come sooner. Headers are read with ``stop_before_pixels``; a study is complete when
its required series are identified (:func:`glioedge.dicom_io.identify_modalities`) and no file
has arrived for ``quiet_time`` seconds, or when ``max_wait`` seconds passed since its first file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.misc import is_dicom

from glioedge.dicom_io import group_datasets, identify_modalities
from glioedge.dicom_io.discovery import IMAGE_SOP_CLASSES
from glioedge.dicom_io.modality import ModalityRules
from glioedge.errors import InputError

logger = logging.getLogger(__name__)

#: Names of files still being written by a cooperating writer (e.g. ``glioedge receive``).
_PARTIAL_SUFFIXES = (".tmp", ".part", ".partial")


@dataclasses.dataclass
class FileEntry:
    """What the scanner knows of one file."""

    size: int
    mtime: float
    study_uid: str = ""
    sop_uid: str = ""
    is_image: bool = False
    error: str = ""
    header: Dataset | None = None


@dataclasses.dataclass
class PendingStudy:
    """The image files of one study seen so far.

    Attributes:
        study_uid: StudyInstanceUID.
        files: Paths of its MR image files.
        first_seen: When its first file was seen (wall clock).
        last_activity: Latest arrival or change of one of its files.
    """

    study_uid: str
    files: list[str]
    first_seen: float
    last_activity: float

    def fingerprint(self, entries: dict[str, FileEntry]) -> str:
        """Job key: the study UID plus a hash of its SOP Instance UIDs.

        A study resent unchanged maps to the same key (not processed again); a study that gained
        instances after it was processed is a new job.
        """
        sops = sorted(entries[f].sop_uid for f in self.files)
        digest = hashlib.sha256("\n".join(sops).encode()).hexdigest()[:16]
        return f"{self.study_uid}#{digest}"


@dataclasses.dataclass(frozen=True)
class BrokenFile:
    """A file that announces itself as DICOM but whose header cannot be read, and has stopped changing."""

    path: str
    error: str
    key: str


class Inbox:
    """Scanner of one inbox folder.

    Args:
        root: The inbox.
        exclude: Folders below the inbox never to scan (outbox, quarantine, state if nested).
        use_watchdog: Subscribe to filesystem events when the watchdog package is importable.
    """

    def __init__(self, root: str | Path, exclude: Iterable[str | Path] = (),
                 use_watchdog: bool = True) -> None:
        self.root = Path(root)
        self.exclude = [Path(p).resolve() for p in exclude]
        self._entries: dict[str, FileEntry] = {}
        self._first_seen: dict[str, float] = {}
        self._activity: dict[str, float] = {}
        self._scanned_once = False
        self._wake = threading.Event()
        self._observer: Any = None
        if use_watchdog:
            self._start_observer()

    # ---- watchdog ---------------------------------------------------------------------------
    def _start_observer(self) -> None:
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:
            logger.info("watchdog not installed: polling the inbox only", extra={"event": "inbox"})
            return
        wake = self._wake

        class _Handler(FileSystemEventHandler):  # type: ignore[misc]
            def on_any_event(self, event: Any) -> None:
                wake.set()

        try:
            self.root.mkdir(parents=True, exist_ok=True)
            observer = Observer()
            observer.schedule(_Handler(), str(self.root), recursive=True)
            observer.daemon = True
            observer.start()
        except OSError as exc:  # e.g. inotify watch limit reached
            logger.warning("filesystem events unavailable (%s): polling the inbox only", exc,
                           extra={"event": "inbox"})
            return
        self._observer = observer

    def wait(self, timeout: float) -> bool:
        """Sleep until a filesystem event or ``timeout``; True when woken by an event."""
        woken = self._wake.wait(timeout)
        self._wake.clear()
        return woken

    def wake(self) -> None:
        """Make a pending :meth:`wait` return now (used on shutdown)."""
        self._wake.set()

    def close(self) -> None:
        """Stop the observer thread."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    # ---- scanning ---------------------------------------------------------------------------
    def _skipped(self, path: Path) -> bool:
        if path.name.startswith(".") or path.name.endswith(_PARTIAL_SUFFIXES):
            return True
        resolved = path.resolve()
        return any(resolved.is_relative_to(ex) for ex in self.exclude)

    def scan(self, now: float | None = None) -> tuple[list[PendingStudy], list[BrokenFile]]:
        """Rescan the inbox.

        Args:
            now: Wall-clock time of the scan (tests pass their own).

        Returns:
            The studies with at least one MR image, and the unreadable files that stopped changing
            (candidates for quarantine; the caller uses ``quiet_time`` on their age).
        """
        now = time.time() if now is None else now
        seen: set[str] = set()
        if self.root.is_dir():
            for path in self.root.rglob("*"):
                try:
                    if not path.is_file() or self._skipped(path):
                        continue
                    stat = path.stat()
                except OSError:
                    continue  # vanished while scanning
                key = str(path)
                seen.add(key)
                old = self._entries.get(key)
                if old is not None and old.size == stat.st_size and old.mtime == stat.st_mtime:
                    continue
                self._entries[key] = _read_entry(path, stat.st_size, stat.st_mtime)
                arrival = stat.st_mtime if not self._scanned_once else max(now, stat.st_mtime)
                self._activity[key] = arrival
        for gone in set(self._entries) - seen:
            del self._entries[gone]
            self._activity.pop(gone, None)
        self._scanned_once = True
        studies: dict[str, PendingStudy] = {}
        broken: list[BrokenFile] = []
        for key, entry in self._entries.items():
            activity = self._activity[key]
            if entry.error:
                digest = hashlib.sha256(key.encode()).hexdigest()[:16]
                broken.append(BrokenFile(key, entry.error,
                                         f"file:{digest}:{entry.size}:{int(entry.mtime)}"))
                continue
            if not entry.is_image:
                continue
            first = self._first_seen.setdefault(entry.study_uid, min(activity, now))
            study = studies.setdefault(entry.study_uid,
                                       PendingStudy(entry.study_uid, [], first, activity))
            study.files.append(key)
            study.last_activity = max(study.last_activity, activity)
        for study in studies.values():
            study.files.sort()
        return sorted(studies.values(), key=lambda s: s.first_seen), broken

    def entries(self) -> dict[str, FileEntry]:
        """The per-file cache (path → entry)."""
        return self._entries

    def activity(self, path: str) -> float:
        """When a file last arrived or changed."""
        return self._activity.get(path, 0.0)

    def forget_headers(self, files: Sequence[str]) -> None:
        """Drop cached headers of files that belong to a job already (memory stays bounded)."""
        for f in files:
            if f in self._entries:
                self._entries[f].header = None

    def headers(self, files: Sequence[str]) -> list[Dataset]:
        """The header datasets of ``files`` (re-read when dropped from the cache).

        Raises:
            InputError: a file cannot be read any more.
        """
        out = []
        for f in files:
            entry = self._entries.get(f)
            header = entry.header if entry is not None else None
            if header is None:
                try:
                    header = pydicom.dcmread(f, stop_before_pixels=True)
                except Exception as exc:
                    raise InputError(f"{f}: header no longer readable: {exc}") from exc
            out.append(header)
        return out


def _read_entry(path: Path, size: int, mtime: float) -> FileEntry:
    entry = FileEntry(size=size, mtime=mtime)
    try:
        if not is_dicom(path):
            return entry  # not DICOM (no DICM preamble): ignored
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:  # any reader failure is an unreadable file, reported by name
        entry.error = f"{type(exc).__name__}: {exc}"
        return entry
    if "SOPClassUID" not in ds:
        entry.error = ("DICM preamble but no SOPClassUID (0008,0016): truncated, corrupt or not a "
                       "composite object")
        return entry
    entry.study_uid = str(ds.get("StudyInstanceUID", "")).strip()
    entry.sop_uid = str(ds.get("SOPInstanceUID", "")).strip()
    entry.is_image = str(ds.get("SOPClassUID", "")) in IMAGE_SOP_CLASSES
    if entry.is_image and not (entry.study_uid and entry.sop_uid):
        entry.error = "MR image without StudyInstanceUID or SOPInstanceUID (0020,000D / 0008,0018)"
    entry.header = ds if entry.is_image else None
    return entry


def missing_series(headers: Sequence[Dataset], required: Sequence[str],
                   rules: ModalityRules | None = None) -> str:
    """Why a study is not yet complete, or ``""`` when its required series are all identified."""
    try:
        studies = group_datasets(headers, where="inbox study")
        identify_modalities(studies[0], required=required, optional=(), rules=rules)
    except InputError as exc:
        return str(exc)
    return ""
