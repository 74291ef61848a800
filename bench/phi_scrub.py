"""The daemon's PHI scrubber at scale: remember one more study, then scrub its log lines, with
~50 000 patient values already known. Baseline: the previous scrubber (one regular expression over
every value, rebuilt whenever a study adds values), kept here verbatim for the comparison.

    python bench/phi_scrub.py [--values 50000] [--studies 3] [--lines 50]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import OrderedDict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import print_table, write_json
from glioedge.runtime.daemon.logging import _Scrubber


class LegacyScrubber:
    """glioedge ≤ c070dac: literal alternation of every value, recompiled after each new study."""

    def __init__(self) -> None:
        self._values: OrderedDict[str, None] = OrderedDict()
        self._pattern: re.Pattern[str] | None = None

    def add_values(self, values: list[str], min_length: int = 3) -> None:
        changed = False
        for raw in values:
            value = raw.strip()
            if len(value) < 3 or value in self._values:
                continue
            self._values[value] = None
            changed = True
        if changed:
            self._pattern = None

    def scrub(self, text: str) -> str:
        if self._pattern is None:
            values = [re.escape(v) for v in sorted(self._values, key=len, reverse=True)]
            self._pattern = re.compile("|".join(values))
        return self._pattern.sub("[phi]", text)


def _study_values(n: int) -> list[str]:
    name = f"FAMILY{n:06d}^GIVEN{n:06d}"
    parts = [f"FAMILY{n:06d}", f"GIVEN{n:06d}"]
    return [name, f"ID{n:07d}", f"19{n % 100:02d}0101", f"ACC{n:07d}", *parts]


def _legacy_forms(values: list[str]) -> list[str]:
    return [f for v in values for f in (v, v.upper(), v.lower(), v.title())]  # as remember_phi did


def run(scrubber: object, values: int, studies: int, lines: int, legacy: bool) -> dict[str, float]:
    known = [v for n in range(values // 6) for v in _study_values(n)]
    scrubber.add_values(_legacy_forms(known) if legacy else known)  # type: ignore[attr-defined]
    scrubber.scrub("warm up")  # type: ignore[attr-defined]
    line = ("study 1.2.826.0.1.3680043.8.498.{n} queued: 312 files from "
            "/inbox/Family{n:06d} Given{n:06d}_ID{n:07d}/IM{k:04d}.dcm, quiet 5.0 s")
    per_study: list[float] = []
    leaks = 0
    for s in range(studies):
        n = 10_000_000 + s
        new = _study_values(n)
        t0 = time.perf_counter()
        scrubber.add_values(_legacy_forms(new) if legacy else new)  # type: ignore[attr-defined]
        for k in range(lines):
            out = scrubber.scrub(line.format(n=n, k=k))  # type: ignore[attr-defined]
            leaks += f"{n:06d}" in out.replace(f"498.{n}", "")
        per_study.append(time.perf_counter() - t0)
    per_study.sort()
    return {"median_s_per_study": per_study[len(per_study) // 2], "max_s_per_study": per_study[-1],
            "leaks": float(leaks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--values", type=int, default=50_000)
    parser.add_argument("--studies", type=int, default=3)
    parser.add_argument("--lines", type=int, default=50)
    args = parser.parse_args()
    rows = []
    for label, scrubber, legacy in (("legacy (regex, rebuilt per study)", LegacyScrubber(), True),
                                    ("word index (this version)", _Scrubber(capacity=10**6), False)):
        result = run(scrubber, args.values, args.studies, args.lines, legacy)
        rows.append({"scrubber": label, **result})
    base = rows[0]["median_s_per_study"]
    for r in rows:
        r["speed-up"] = base / r["median_s_per_study"]
    print(f"{args.values} known values, {args.studies} new studies, {args.lines} log lines each")
    print_table(rows, ["scrubber", "median_s_per_study", "max_s_per_study", "speed-up", "leaks"])
    write_json("phi_scrub", {"args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
