"""Quarantine: copy a bad study's inputs aside with the reason. Inputs are never moved or deleted.

Nothing written here carries a name from the inbox: inbox folders are often named after the
patient (viewer exports: ``<name>_<ID>_<birth date>``), so the copies get neutral names and
``reason.json`` names each source by the stable hashed form the logs and ``glioedge jobs`` use.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from glioedge.fileio import atomic_write_text
from glioedge.runtime.daemon.logging import hashed_path, hide_paths, scrub
from glioedge.runtime.daemon.names import study_folder

logger = logging.getLogger(__name__)


def quarantine(root: str | Path, uid: str, files: Sequence[str | Path], reason: str, *,
               job_id: int | None = None, inbox: str | Path | None = None,
               details: dict[str, Any] | None = None) -> Path:
    """Copy ``files`` to ``<root>/<safe uid>[/job-<id>]/files/`` and write ``reason.json`` and
    ``reason.txt``.

    Each copy is named ``<n>-<hash>.dcm`` (``hash``: of its path relative to the inbox), never
    after the inbox's folder or file names; ``reason.json`` lists ``{"file", "source"}`` pairs,
    ``source`` being the hashed form of the original path (``<inbox file …>``, as in the logs
    and ``glioedge jobs``; ``--show-paths`` there shows the path itself). DICOM readers do not
    need the names: an operator can fix and re-drop the copies. Each job (one version of a study)
    has its own folder, as in the outbox, so a later version never mixes its files and reason into
    an earlier one's. Writing is idempotent: quarantining the same job again after a crash
    overwrites the same folder.

    Args:
        root: The quarantine folder.
        uid: StudyInstanceUID (or another key) naming the folder; sanitised.
        job_id: The job (version of the study) it was quarantined in; ``None``: no job (an
            unreadable file quarantined on its own).
        files: The study's input files.
        reason: Why, in words (the error message).
        inbox: The inbox, to keep relative paths.
        details: Extra JSON-serialisable facts for ``reason.json``.

    Returns:
        The study's quarantine folder.

    Raises:
        OSError: the copy or the reason file cannot be written (e.g. the disk is full).
    """
    folder = study_folder(root, uid, job_id)
    target = folder / "files"
    target.mkdir(parents=True, exist_ok=True)
    copied: list[dict[str, str]] = []
    base = Path(inbox).resolve() if inbox is not None else None
    reason = scrub(hide_paths(reason, [str(f) for f in files], inbox))
    for n, f in enumerate(files):
        src = Path(f)
        try:
            rel = str(src.resolve().relative_to(base)) if base is not None else str(src)
        except ValueError:
            rel = str(src)
        name = f"{n:05d}-{hashlib.sha256(rel.encode()).hexdigest()[:12]}.dcm"
        try:
            shutil.copy2(src, target / name)
        except FileNotFoundError:
            logger.warning("input vanished before quarantine", extra={"event": "quarantine",
                                                                      "file": hashed_path(str(src))})
            continue
        copied.append({"file": name, "source": hashed_path(str(src))})
    record = {
        "uid": uid, "reason": reason, "time": dt.datetime.now(dt.timezone.utc).isoformat(),
        "files": copied, **(details or {}),
    }
    atomic_write_text(folder / "reason.json", json.dumps(record, indent=2))
    atomic_write_text(folder / "reason.txt", f"{reason}\n")
    logger.warning("study quarantined", extra={"event": "quarantine", "study_uid": uid,
                                               "reason": reason, "folder": str(folder)})
    return folder


