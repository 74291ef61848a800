"""Find what changed under the inbox without walking what did not.

Every poll stats each *folder* once; a folder's files are listed and stat'ed only when it is new,
its mtime changed (a file was created, renamed or removed in it), it changed recently (a file in
it changed within ``settle`` seconds: files still being written in place are watched on every
poll), a filesystem event named it, or at a full rescan every ``rescan`` seconds (a file
rewritten in place in an old folder of a network share, where no event arrives). So an idle poll
of an inbox with 300 retained studies costs one ``stat`` per folder, not one per file, and the
exclusion of the daemon's own folders is decided once per folder (``realpath``), not per file.
"""

# Plain str paths and os.* calls on purpose: this runs over tens of thousands of entries per poll.
# ruff: noqa: PTH116, PTH118, PTH120

from __future__ import annotations

import dataclasses
import os
import stat as stat_mod
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

Signature = tuple[int, int, int]


@dataclasses.dataclass
class _Folder:
    mtime_ns: int
    files: dict[str, Signature]
    subdirs: set[str]
    changed_at: float


class TreeScanner:
    """Incremental scanner of one folder tree.

    Args:
        root: The tree.
        exclude: Folders never entered (resolved).
        skip_name: File names to ignore (hidden files, partial uploads).
        settle: Seconds after its last change during which a folder's files are stat'ed on every
            poll.
        rescan: Seconds between full rescans.
    """

    def __init__(self, root: str | Path, exclude: Iterable[Path], skip_name: Callable[[str], bool],
                 settle: float = 30.0, rescan: float = 60.0) -> None:
        self.root = str(root)
        self.exclude = [Path(p).resolve() for p in exclude]
        self.skip_name = skip_name
        self.settle = settle
        self.rescan = rescan
        self._folders: dict[str, _Folder] = {}
        self._excluded: dict[str, bool] = {}
        self._dirty: set[str] = set()
        self._lock = threading.Lock()
        self._last_full = float("-inf")
        #: Counters of the last scan (folders stat'ed, folders listed, files stat'ed).
        self.last: dict[str, int] = {}

    def mark_dirty(self, path: str) -> None:
        """A filesystem event named ``path``: list its folder (and itself, if a folder) next time."""
        with self._lock:
            self._dirty.add(path)
            self._dirty.add(os.path.dirname(path))

    def _is_excluded(self, path: str) -> bool:
        found = self._excluded.get(path)
        if found is None:
            resolved = Path(path).resolve()
            found = any(resolved.is_relative_to(ex) for ex in self.exclude)
            self._excluded[path] = found
        return found

    def scan(self, now: float) -> tuple[dict[str, os.stat_result], set[str]]:
        """One poll.

        Returns:
            ``(new or changed files with their stat, files gone)`` since the previous scan.
        """
        full = now - self._last_full >= self.rescan
        if full:
            self._last_full = now
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        changed: dict[str, os.stat_result] = {}
        removed: set[str] = set()
        seen: set[str] = set()
        counts = {"folders": 0, "listed": 0, "files": 0}
        stack = [self.root]
        while stack:
            folder = stack.pop()
            try:
                st = os.stat(folder)
            except OSError:
                continue
            if not stat_mod.S_ISDIR(st.st_mode):
                continue
            counts["folders"] += 1
            seen.add(folder)
            known = self._folders.get(folder)
            if (known is None or full or folder in dirty or st.st_mtime_ns != known.mtime_ns
                    or now - known.changed_at < self.settle or now - st.st_mtime < self.settle):
                known = self._list(folder, st, known, now, changed, removed, counts)
            stack.extend(os.path.join(folder, name) for name in known.subdirs)
        for gone in set(self._folders) - seen:
            for name in self._folders.pop(gone).files:
                removed.add(os.path.join(gone, name))
        self.last = counts
        return changed, removed

    def _list(self, folder: str, st: os.stat_result, known: _Folder | None, now: float,
              changed: dict[str, os.stat_result], removed: set[str], counts: dict[str, int]) -> _Folder:
        files: dict[str, Signature] = {}
        subdirs: set[str] = set()
        before = known.files if known is not None else {}
        try:
            entries = os.scandir(folder)
        except OSError:
            return known or _Folder(st.st_mtime_ns, {}, set(), now)
        counts["listed"] += 1
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if not self._is_excluded(entry.path):
                            subdirs.add(entry.name)
                        continue
                    if self.skip_name(entry.name):
                        continue
                    fst = entry.stat()  # follows a symlinked file
                    counts["files"] += 1
                    if not stat_mod.S_ISREG(fst.st_mode):
                        continue
                    if entry.is_symlink() and self._is_excluded(os.path.realpath(entry.path)):
                        continue
                except OSError:
                    continue  # vanished while listing
                sig = (fst.st_size, fst.st_mtime_ns, fst.st_ino)
                files[entry.name] = sig
                if before.get(entry.name) != sig:
                    changed[entry.path] = fst
        gone = [name for name in before if name not in files]
        removed.update(os.path.join(folder, name) for name in gone)
        change = bool(gone) or any(os.path.join(folder, n) in changed for n in files) or (
            known is not None and known.subdirs != subdirs)
        if known is None:  # first sight (e.g. at start-up): its files' own age, not "now"
            newest = max([st.st_mtime_ns, *(sig[1] for sig in files.values())]) / 1e9
            changed_at = min(now, newest)
        else:
            changed_at = now if change else known.changed_at
        folder_state = _Folder(st.st_mtime_ns, files, subdirs, changed_at)
        self._folders[folder] = folder_state
        return folder_state
