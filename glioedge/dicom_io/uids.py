"""Deterministic DICOM UIDs: ``2.25.<uuid5 integer>`` from the values that define an object."""

from __future__ import annotations

import uuid

#: Namespace of glioedge's UUIDv5s (a fixed random UUID; never change it, UIDs depend on it).
GLIOEDGE_UUID_NAMESPACE = uuid.UUID("6f1d3c0e-8f0a-4a57-9a53-1b8c3f0f6a2e")


def deterministic_uid(*parts: object) -> str:
    """A UID that depends only on ``parts`` (joined with ``|``), e.g. source series UID + bundle id.

    ``2.25.`` followed by the decimal integer of a UUIDv5 is a valid DICOM UID (PS3.5 B.2) of at
    most 44 characters, so the same inputs give the same SEG series/instance after a re-run.
    """
    text = "|".join(str(p) for p in parts)
    return f"2.25.{uuid.uuid5(GLIOEDGE_UUID_NAMESPACE, text).int}"
