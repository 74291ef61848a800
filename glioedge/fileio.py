"""The one way glioedge writes a file that must never be seen half-written (ground floor).

A reader (a PACS sender, the daemon after kill -9, a verifier) sees either the old file or the
whole new one: the bytes go to a temporary file in the same folder, are fsynced, renamed over the
target, and the folder is fsynced so the rename itself survives a power cut. A folder of outputs
(a result, a bundle, a checkpoint, a delivered copy) is published the same way by
:func:`publish_dir`: written in full elsewhere on the same file system, fsynced, renamed into place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "fsync_dir", "publish_dir"]


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


def _fsync_tree(root: Path) -> None:
    """fsync every file below ``root``, then every folder, deepest first (``root`` last)."""
    folders = [root]
    for dirpath, dirnames, filenames in os.walk(root):
        folders.extend(Path(dirpath) / d for d in dirnames)
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        fsync_dir(folder)


def publish_dir(staging: Path | str, final: Path | str, old: Path | str | None = None) -> Path:
    """Publish the folder ``staging`` as ``final``: fsync its contents, rename, fsync the parent.

    ``staging`` must be complete and on the file system of ``final`` (a sibling, or a folder such
    as ``<outbox>/_tmp``). A previous ``final`` is renamed aside to ``old`` (default
    ``<staging>.old``) first and removed once the new folder is in place, so a reader sees the old
    folder or the whole new one, never a mixture; if the second rename fails (``OSError``), the old
    folder is put back. A crash between the two renames leaves the previous folder whole at ``old``.

    Raises:
        OSError: a file could not be flushed or a rename failed (``staging`` is left where it was,
            and a previous ``final`` is where it was).
    """
    staging, final = Path(staging), Path(final)
    parked = Path(old) if old is not None else staging.with_name(staging.name + ".old")
    _fsync_tree(staging)
    final.parent.mkdir(parents=True, exist_ok=True)
    # A parked folder without a final is the only copy left by a crash: keep it until the new
    # folder is in place.
    if final.exists():
        shutil.rmtree(parked, ignore_errors=True)
        final.rename(parked)
        try:
            staging.rename(final)
        except OSError:
            parked.rename(final)
            raise
    else:
        staging.rename(final)
    fsync_dir(final.parent)
    if staging.parent != final.parent:
        fsync_dir(staging.parent)
    shutil.rmtree(parked, ignore_errors=True)
    return final
