"""What the inbox scanner learnt of each file, kept across restarts (``<state>/inbox_cache.sqlite``).

A file is read (header) and hashed (SHA-256) once: its entry is stored under its path with the
signature ``(size, mtime_ns, inode)`` it had then, and reused at the next start while the file
still has that signature, so a restart with 30 days of retained studies in the inbox reads
nothing it already knows. A file rewritten in place (new size or mtime) or replaced (new inode)
no longer matches and is read again. Files whose header could not be read are not stored (they
are looked at again). The store holds inbox paths, like the job store: keep the state folder
private.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: File name of the cache in the state folder.
CACHE_NAME = "inbox_cache.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ino INTEGER NOT NULL,
    digest TEXT NOT NULL, study_uid TEXT NOT NULL, sop_uid TEXT NOT NULL, is_image INTEGER NOT NULL
) WITHOUT ROWID;
"""
Signature = tuple[int, int, int]
Known = tuple[str, str, str, bool]


class DigestCache:
    """The stored entries, loaded once; changes are written in one transaction per scan.

    A cache that cannot be opened or written is logged and then not used: the scanner works
    without it (it reads every file once more after a restart).

    Args:
        path: The SQLite file (its folder must exist).
    """

    def __init__(self, path: str | Path) -> None:
        self._db: sqlite3.Connection | None = None
        self._known: dict[str, tuple[Signature, Known]] = {}
        self._put: dict[str, tuple[Signature, Known]] = {}
        self._drop: set[str] = set()
        try:
            db = sqlite3.connect(str(path), isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            for row in db.execute("SELECT * FROM files"):
                self._known[row[0]] = ((row[1], row[2], row[3]), (row[4], row[5], row[6], bool(row[7])))
            self._db = db
        except sqlite3.Error as exc:
            logger.warning("inbox cache unusable; every file is read again after a restart",
                           extra={"event": "inbox", "error": str(exc)})

    def __len__(self) -> int:
        return len(self._known)

    def get(self, path: str, signature: Signature) -> Known | None:
        """``(digest, study_uid, sop_uid, is_image)`` when ``path`` still has ``signature``."""
        found = self._known.get(path)
        return found[1] if found is not None and found[0] == signature else None

    def put(self, path: str, signature: Signature, known: Known) -> None:
        """Remember a file just read (written at :meth:`flush`)."""
        if self._known.get(path) != (signature, known):
            self._known[path] = (signature, known)
            self._put[path] = (signature, known)
            self._drop.discard(path)

    def drop(self, path: str) -> None:
        """Forget a file that is gone."""
        if self._known.pop(path, None) is not None:
            self._put.pop(path, None)
            self._drop.add(path)

    def flush(self) -> None:
        """Write what changed since the last flush."""
        if self._db is None or not (self._put or self._drop):
            return
        rows: list[tuple[Any, ...]] = [(p, *sig, *known) for p, (sig, known) in self._put.items()]
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                self._db.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in self._drop])
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            logger.warning("inbox cache not written (tried again at the next scan)",
                           extra={"event": "inbox", "error": str(exc)})
            return
        self._put.clear()
        self._drop.clear()

    def close(self) -> None:
        """Write what is pending and close the file."""
        self.flush()
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
