"""File and folder names built from DICOM UIDs only, sanitised so that no header can steer a path."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def safe_uid(uid: object) -> str:
    """A file-system-safe name for a UID.

    A valid UID (digits and dots, at most 64 characters) is used as it is; anything else (empty,
    letters, slashes, ``..``) becomes ``x`` followed by 32 hex digits of its SHA-256, so that a
    malicious or broken header can never name a path outside the intended folder.
    """
    text = str(uid).strip().rstrip("\x00")
    if _UID.match(text) and len(text) <= 64:
        return text
    return "x" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]


def study_folder(root: str | Path, study_uid: str, job_id: int | None = None) -> Path:
    """``<root>/<sanitised study uid>``, and with ``job_id`` the folder of that job (one version of
    the study): ``<root>/<sanitised study uid>/job-<id>``. The outbox and the quarantine both use
    it, so versions of a study never write into each other's folder."""
    study = Path(root) / safe_uid(study_uid)
    return study if job_id is None else study / f"job-{int(job_id)}"
