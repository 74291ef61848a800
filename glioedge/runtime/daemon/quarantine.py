"""Quarantine: copy a bad study's inputs aside with the reason. Inputs are never moved or deleted."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from glioedge.fileio import atomic_write_text
from glioedge.runtime.daemon.names import safe_uid

logger = logging.getLogger(__name__)


def quarantine(root: str | Path, uid: str, files: Sequence[str | Path], reason: str, *,
               inbox: str | Path | None = None, details: dict[str, Any] | None = None) -> Path:
    """Copy ``files`` to ``<root>/<safe uid>/files/…`` and write ``reason.json`` and ``reason.txt``.

    The copy keeps each file's path relative to the inbox when it is below it (else its name),
    so that an operator can fix and re-drop the study. Writing is idempotent: quarantining the
    same study again after a crash overwrites the same folder.

    Args:
        root: The quarantine folder.
        uid: StudyInstanceUID (or another key) naming the folder; sanitised.
        files: The study's input files.
        reason: Why, in words (the error message).
        inbox: The inbox, to keep relative paths.
        details: Extra JSON-serialisable facts for ``reason.json``.

    Returns:
        The study's quarantine folder.

    Raises:
        OSError: the copy or the reason file cannot be written (e.g. the disk is full).
    """
    folder = Path(root) / safe_uid(uid)
    target = folder / "files"
    target.mkdir(parents=True, exist_ok=True)
    copied: list[str] = []
    base = Path(inbox).resolve() if inbox is not None else None
    for n, f in enumerate(files):
        src = Path(f)
        try:
            rel = src.resolve().relative_to(base) if base is not None else Path(src.name)
        except ValueError:
            rel = Path(f"{n:05d}_{src.name}")
        dst = target / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy2(src, dst)
        except FileNotFoundError:
            logger.warning("input vanished before quarantine", extra={"event": "quarantine",
                                                                      "file": src.name})
            continue
        copied.append(str(rel))
    record = {
        "uid": uid, "reason": reason, "time": dt.datetime.now(dt.timezone.utc).isoformat(),
        "files": copied, **(details or {}),
    }
    atomic_write_text(folder / "reason.json", json.dumps(record, indent=2))
    atomic_write_text(folder / "reason.txt", f"{reason}\n")
    logger.warning("study quarantined", extra={"event": "quarantine", "study_uid": uid,
                                               "reason": reason, "folder": str(folder)})
    return folder


