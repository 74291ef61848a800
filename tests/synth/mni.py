"""The semi-synthetic MNI152 study for tests, or a skip that says why it cannot be made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def mni_study_or_skip(root: Path, **options: Any):
    """:func:`glioedge.synth.mni_case.write_mni_study` under ``root``; skips when the MNI152
    tissue maps (nilearn's wheel, the dev extra that CI installs) are missing."""
    from glioedge.synth import TemplateMissingError, mni152_paths
    from glioedge.synth.mni_case import write_mni_study

    try:
        mni152_paths()
    except TemplateMissingError as exc:
        pytest.skip(f"MNI152 tissue maps not installed: {exc}")
    return write_mni_study(root, **options)
