"""Check that every declared dependency floor of glioedge is a version that resolves.

``python scripts/lowest_deps.py LOCK EXTRA...`` reads a lock file written by
``uv pip compile --resolution lowest-direct`` (the lowest version of each direct dependency that
resolves with the others) and compares each direct dependency of the core and of ``EXTRA`` with
its ``>=`` floor in pyproject.toml: a floor that cannot be installed (another floor needs more, or
no such release exists for this Python) is reported and the exit status is 1. CI
(``scripts/lowest_deps.sh``) then installs that lock and runs the tests that exercise it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_REQ = re.compile(r"^\s*(?P<name>[A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(?P<spec>[^;]*)(?:;(?P<marker>.*))?$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:4])


def floors(pyproject: Path, extras: list[str]) -> dict[str, str]:
    """``{name: floor}`` of every ``>=`` requirement of the core and of ``extras``."""
    import tomllib  # stdlib from 3.11, the oldest Python glioedge supports

    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    out: dict[str, str] = {}
    for req in reqs:
        match = _REQ.match(req)
        low = re.search(r">=\s*([0-9][^,\s]*)", match["spec"]) if match else None
        if match and low and match["name"] != "glioedge":
            out[_norm(match["name"])] = low.group(1)
    return out


def mismatches(declared: dict[str, str], lock: str) -> list[str]:
    """Floors the lowest resolution could not use, as ``name: declared X, lowest resolvable Y``."""
    resolved = {_norm(n): v for n, v in re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", lock, re.M)}
    out = []
    for name, floor in sorted(declared.items()):
        got = resolved.get(name)
        want = _version(floor)
        if got is None or _version(got) != want + (0,) * (len(_version(got)) - len(want)):
            out.append(f"{name}: declared >= {floor}, lowest resolvable {got or 'none'}")
    return out


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    wrong = mismatches(floors(root / "pyproject.toml", sys.argv[2:]), Path(sys.argv[1]).read_text())
    for line in wrong:
        print(f"floor not installable: {line}")
    sys.exit(1 if wrong else 0)
