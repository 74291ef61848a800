"""The one way glioedge writes a file that must never be seen half-written (ground floor).

A reader (a PACS sender, the daemon after kill -9, a verifier) sees either the old file or the
whole new one: the bytes go to a temporary file in the same folder, are fsynced, renamed over the
target, and the folder is fsynced so the rename itself survives a power cut.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "fsync_dir"]


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename inside it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (e.g. certain network mounts) refuse fsync on a folder
    finally:
        os.close(fd)


def atomic_write(path: Path | str, write: Callable[[BinaryIO], None], mode: int = 0o644) -> Path:
    """Write ``path`` through ``write(file)``: temp file in the same folder, fsync, rename, fsync folder.

    Raises:
        OSError: the folder is not writable or the disk is full (the temporary file is removed and
            the old ``path``, if any, is left as it was).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).chmod(mode)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: Path | str, data: bytes, mode: int = 0o644) -> Path:
    """:func:`atomic_write` of a bytes object."""
    return atomic_write(path, lambda f: f.write(data), mode)


def atomic_write_text(path: Path | str, text: str, mode: int = 0o644) -> Path:
    """:func:`atomic_write` of a text, UTF-8 encoded."""
    return atomic_write_bytes(path, text.encode("utf-8"), mode)
