"""Watch the inbox: group files into studies by header, decide when a study is complete.

The scan is the source of truth and runs every ``poll_interval`` seconds (so network shares,
where filesystem events are unreliable, work); watchdog events, when available, only make the
next scan come sooner. Headers are read with ``stop_before_pixels``; a study is complete when
its required series are identified (:func:`glioedge.dicom_io.identify_modalities`, with the
site's modality rules), their slice geometry is whole (no gap: a gap means "not all here yet"),
and no file has arrived for ``quiet_time`` seconds; or when ``max_wait`` seconds passed since the
first file of this version of the study.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset

from glioedge.dicom_io import group_datasets, identify_modalities, series_grid
from glioedge.dicom_io.completeness import check_completeness
from glioedge.dicom_io.discovery import IMAGE_SOP_CLASSES
from glioedge.dicom_io.headers import NOT_DICOM, IgnoredFile, read_header, sop_class_name
from glioedge.dicom_io.modality import ModalityRules
from glioedge.errors import InputError
from glioedge.runtime.daemon.inbox_cache import DigestCache
from glioedge.runtime.daemon.logging import remember_phi
from glioedge.runtime.daemon.tree_scan import TreeScanner

logger = logging.getLogger(__name__)

#: Names of files still being written by a cooperating writer (e.g. ``glioedge receive``).
_PARTIAL_SUFFIXES = (".tmp", ".part", ".partial")


@dataclasses.dataclass
class FileEntry:
    """What the scanner knows of one file."""

    size: int
    mtime: float
    mtime_ns: int = 0
    ino: int = 0
    digest: str = ""
    study_uid: str = ""
    sop_uid: str = ""
    is_image: bool = False
    error: str = ""
    header: Dataset | None = None
    #: Why the daemon never processes this file (not DICOM, a DICOMDIR, a non-MR object); these
    #: are logged once by :meth:`Inbox.scan` and removed by ``glioedge purge`` after the age.
    ignored: str = ""


@dataclasses.dataclass
class PendingStudy:
    """The image files of one study seen so far.

    Attributes:
        study_uid: StudyInstanceUID.
        files: Paths of its MR image files.
        activities: When each file arrived or last changed (wall clock), parallel to ``files``.
        last_activity: Latest arrival or change of one of its files.
    """

    study_uid: str
    files: list[str]
    activities: list[float]
    last_activity: float
    _key: str = dataclasses.field(default="", repr=False, compare=False)

    @property
    def first_seen(self) -> float:
        """When its first file (still present) arrived."""
        return min(self.activities, default=self.last_activity)

    def first_seen_since(self, since: float | None) -> float:
        """When the first file that arrived or changed after ``since`` did: the start of this
        version of the study (``since``: when a job of an earlier version was created), so that a
        study sent again starts a new quiet time and ``max_wait`` instead of being overdue at once.
        """
        if since is None:
            return self.first_seen
        return min((a for a in self.activities if a > since), default=self.last_activity)

    def fingerprint(self, entries: dict[str, FileEntry]) -> str:
        """Job key: the study UID plus a hash of its SOP Instance UIDs and their files' contents.

        A study resent unchanged (same files again, or copies in another folder) maps to the same
        key and is not processed again; a study that gained instances, or whose files changed (a
        half-written file completed), is a new job.
        """
        if self._key:  # the scanner builds a new object whenever a file of the study changes
            return self._key
        lines = sorted({f"{entries[f].sop_uid}\t{entries[f].digest}" for f in self.files})
        digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
        self._key = f"{self.study_uid}#{digest}"
        return self._key


@dataclasses.dataclass(frozen=True)
class BrokenFile:
    """A file that announces itself as DICOM but whose header cannot be read, and has stopped changing."""

    path: str
    error: str
    key: str


class Inbox:
    """Scanner of one inbox folder.

    A poll costs what changed, not what is retained: :class:`.tree_scan.TreeScanner` lists only
    folders that changed, the per-file entries (header facts and digest) are kept between polls
    and, with ``cache``, across restarts (:class:`.inbox_cache.DigestCache`), and the studies
    are regrouped only where a file came, changed or went.

    Args:
        root: The inbox.
        exclude: Folders below the inbox never to scan (outbox, quarantine, state if nested).
        use_watchdog: Subscribe to filesystem events when the watchdog package is importable.
        cache: The digest cache file (None: none; every file is read after a restart).
        settle: Seconds after a change during which a folder's files are stat'ed on every poll
            (the daemon passes ``quiet_time``).
        rescan: Seconds between full rescans of the tree.
    """

    def __init__(self, root: str | Path, exclude: Iterable[str | Path] = (),
                 use_watchdog: bool = True, cache: str | Path | None = None,
                 settle: float = 30.0, rescan: float = 60.0) -> None:
        self.root = Path(root)
        self.exclude = [Path(p).resolve() for p in exclude]
        self._entries: dict[str, FileEntry] = {}
        self._activity: dict[str, float] = {}
        self._scanned_once = False
        self._reported_ignored: set[str] = set()
        self._wake = threading.Event()
        self._observer: Any = None
        self._tree = TreeScanner(self.root, self.exclude, _skip_name, settle=settle, rescan=rescan)
        self._cache = DigestCache(cache) if cache is not None else None
        self._members: dict[str, set[str]] = {}
        self._studies: dict[str, PendingStudy] = {}
        self._broken: set[str] = set()
        self._removed_at: dict[str, float] = {}  # study uid → when a file of it last went
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
        wake, tree = self._wake, self._tree

        class _Handler(FileSystemEventHandler):  # type: ignore[misc]
            def on_any_event(self, event: Any) -> None:
                for path in (getattr(event, "src_path", ""), getattr(event, "dest_path", "")):
                    if path:
                        tree.mark_dirty(os.fsdecode(path))
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
        if self._cache is not None:
            self._cache.close()

    # ---- scanning ---------------------------------------------------------------------------
    def scan(self, now: float | None = None) -> tuple[list[PendingStudy], list[BrokenFile]]:
        """Rescan the inbox (what changed since the last scan).

        Args:
            now: Wall-clock time of the scan (tests pass their own).

        Returns:
            The studies with at least one MR image, and the unreadable files that stopped changing
            (candidates for quarantine; the caller uses ``quiet_time`` on their age).
        """
        now = time.time() if now is None else now
        changed, removed = self._tree.scan(now)
        dirty: set[str] = set()
        for key in removed:
            self._forget(key, dirty, now)
            if self._cache is not None:
                self._cache.drop(key)
        for key, st in changed.items():
            old = self._entries.get(key)
            if old is not None and (old.size, old.mtime_ns, old.ino) == (st.st_size, st.st_mtime_ns,
                                                                         st.st_ino):
                continue
            self._forget(key, dirty, now)
            entry = self._entry(key, st)
            self._entries[key] = entry
            self._activity[key] = st.st_mtime if not self._scanned_once else max(now, st.st_mtime)
            if entry.error:
                self._broken.add(key)
            elif entry.is_image:
                self._members.setdefault(entry.study_uid, set()).add(key)
                dirty.add(entry.study_uid)
        if self._cache is not None:
            self._cache.flush()
        self._scanned_once = True
        self._report_ignored()
        for uid in dirty:
            self._regroup(uid, now)
        broken = []
        for key in sorted(self._broken):
            entry = self._entries[key]
            digest = hashlib.sha256(key.encode()).hexdigest()[:16]
            broken.append(BrokenFile(key, entry.error, f"file:{digest}:{entry.size}:{int(entry.mtime)}"))
        return sorted(self._studies.values(), key=lambda s: s.first_seen), broken

    def _entry(self, path: str, st: os.stat_result) -> FileEntry:
        """The entry of a new or changed file: from the digest cache when it still matches."""
        signature = (st.st_size, st.st_mtime_ns, st.st_ino)
        known = self._cache.get(path, signature) if self._cache is not None else None
        if known is not None:
            digest, study_uid, sop_uid, is_image = known
            return FileEntry(size=st.st_size, mtime=st.st_mtime, mtime_ns=st.st_mtime_ns, ino=st.st_ino,
                             digest=digest, study_uid=study_uid, sop_uid=sop_uid, is_image=is_image)
        entry = _read_entry(Path(path), st.st_size, st.st_mtime, st.st_mtime_ns)
        entry.ino = st.st_ino
        if self._cache is not None and not entry.error and not entry.ignored:
            self._cache.put(path, signature,
                            (entry.digest, entry.study_uid, entry.sop_uid, entry.is_image))
        return entry

    def _forget(self, key: str, dirty: set[str], now: float) -> None:
        old = self._entries.pop(key, None)
        self._activity.pop(key, None)
        self._broken.discard(key)
        if old is not None and old.is_image and not old.error:
            members = self._members.get(old.study_uid)
            if members is not None:
                members.discard(key)
            dirty.add(old.study_uid)
            # a file that went is activity of its study: while a study is being deleted (purge,
            # an operator, a PACS export tool) what is left is not a new version until the
            # quiet time after the last removal has passed
            self._removed_at[old.study_uid] = now

    def _regroup(self, uid: str, now: float) -> None:
        """Rebuild the :class:`PendingStudy` of one study whose files changed."""
        files = sorted(self._members.get(uid, ()))
        if not files:
            self._members.pop(uid, None)
            self._studies.pop(uid, None)
            self._removed_at.pop(uid, None)
            return
        activities = [self._activity[f] for f in files]
        last = max(*activities, self._removed_at.get(uid, 0.0))
        self._studies[uid] = PendingStudy(uid, files, [min(a, now) for a in activities], last)

    def _report_ignored(self) -> None:
        """Log the files the daemon will never process, once each, counted by reason (no paths:
        folder names below the inbox may carry patient names)."""
        self._reported_ignored &= set(self._entries)
        fresh: dict[str, int] = {}
        for key, entry in self._entries.items():
            if entry.ignored and key not in self._reported_ignored:
                self._reported_ignored.add(key)
                fresh[entry.ignored] = fresh.get(entry.ignored, 0) + 1
        for reason, count in sorted(fresh.items()):
            logger.warning("inbox files ignored: never processed (glioedge purge removes them after "
                           "the retention age)", extra={"event": "inbox_ignored", "files": count,
                                                        "reason": reason})

    def ignored(self) -> dict[str, str]:
        """The files of the last scan the daemon never processes (path → reason)."""
        return {k: e.ignored for k, e in self._entries.items() if e.ignored}

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


def _skip_name(name: str) -> bool:
    """Hidden files and files still being written by a cooperating writer are not looked at."""
    return name.startswith(".") or name.endswith(_PARTIAL_SUFFIXES)


def _file_digest(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()[:24]


def _read_entry(path: Path, size: int, mtime: float, mtime_ns: int = 0) -> FileEntry:
    """Classify one inbox file by its header, with the same rules as intake (``read_header``).

    A file intake ignores as not DICOM, a DICOMDIR or a known non-MR object is ignored here too,
    never quarantined; one that cannot be read, or says nothing of what it is, is an error by name.
    """
    entry = FileEntry(size=size, mtime=mtime, mtime_ns=mtime_ns)
    try:
        ds = read_header(path)
    except InputError as exc:
        entry.error = str(exc)
        return entry
    if isinstance(ds, IgnoredFile):
        if not ds.sop_class and ds.reason != NOT_DICOM:
            # DICM preamble, but nothing says what it is: quarantined for the operator to look at
            # (it does not stop its study); a DICOMDIR or a non-MR object is simply not ours.
            entry.error = ds.reason
        else:
            entry.ignored = ds.reason
        return entry
    try:
        remember_phi(ds)  # before anything about this file can be logged
        entry.digest = _file_digest(path)
    except OSError as exc:
        entry.error = f"{type(exc).__name__}: {exc}"
        return entry
    entry.study_uid = str(ds.get("StudyInstanceUID", "")).strip()
    entry.sop_uid = str(ds.get("SOPInstanceUID", "")).strip()
    entry.is_image = str(ds.get("SOPClassUID", "")) in IMAGE_SOP_CLASSES
    if entry.is_image and not (entry.study_uid and entry.sop_uid):
        entry.error = "MR image without StudyInstanceUID or SOPInstanceUID (0020,000D / 0008,0018)"
    entry.header = ds if entry.is_image else None
    if not entry.is_image:
        name = sop_class_name(str(ds.get("SOPClassUID", ""))) or "no SOP class"
        entry.ignored = f"not an MR image ({name})"
    return entry


def missing_series(headers: Sequence[Dataset], required: Sequence[str],
                   rules: ModalityRules | None = None) -> str:
    """Why a study is not yet complete, or ``""`` when it is.

    Complete means: the required series are identified with the same rules as the worker's
    (``[model] rules``) and each has whole slice geometry from its headers (a slice missing in
    the middle is a study still arriving, not yet a broken one). Instances present twice (same
    SOP Instance UID, e.g. a resend into another folder) are counted once.
    """
    unique = list({str(ds.get("SOPInstanceUID", id(ds))): ds for ds in headers}.values())
    try:
        studies = group_datasets(unique, where="inbox study")
        selection = identify_modalities(studies[0], required=required, optional=(), rules=rules)
        for modality in required:
            series = selection.chosen[str(getattr(modality, "value", modality))]
            series_grid(series, f"{str(getattr(modality, 'value', modality)).upper()} {series.label()}")
    except InputError as exc:
        return str(exc)
    # whole geometry, yet fewer images than the acquisition made, or cut short of another series
    return "; ".join(f.message for f in check_completeness(
        {k: selection.chosen[k] for k in (str(getattr(m, "value", m)) for m in required)
         if k in selection.chosen}))
