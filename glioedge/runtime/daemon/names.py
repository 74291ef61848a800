"""File and folder names built from DICOM UIDs only, sanitised so that no header can steer a path."""

from __future__ import annotations

import hashlib
import re

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
