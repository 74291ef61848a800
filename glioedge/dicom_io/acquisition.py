"""When a series was acquired, as a sortable key (for choosing among repeated acquisitions).

The earliest instance of a series gives its time, from the first attribute present of:
AcquisitionDateTime (top level, or FrameAcquisitionDateTime in an Enhanced object's frame content),
AcquisitionDate + AcquisitionTime, SeriesDate + SeriesTime. Values are normalised to
``YYYYMMDDHHMMSS.ffffff`` so that DICOM's optional parts and the old ``HH:MM:SS`` form compare
correctly. The values are dates (PHI under HIPAA): they are compared, never logged or reported.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from pydicom.dataset import Dataset


def _time_digits(value: str) -> str:
    """``HHMMSS.ffffff`` from a DICOM TM (``HH``, ``HHMM``, ``HHMMSS.f``, or ``HH:MM:SS``)."""
    value = value.strip().replace(":", "")
    main, _, fraction = value.partition(".")
    main = re.sub(r"\D", "", main)
    fraction = re.sub(r"\D", "", fraction)
    return f"{main.ljust(6, '0')[:6]}.{fraction.ljust(6, '0')[:6]}"


def _stamp(date: str, time: str) -> str:
    date = re.sub(r"\D", "", date)[:8]
    if not time.strip():
        return ""
    return f"{date.ljust(8, '0')}{_time_digits(time)}"


def _from_datetime(value: str) -> str:
    value = re.split(r"[+-]", value.strip(), maxsplit=1)[0]  # drop a UTC offset
    if len(value) < 8:
        return ""
    return _stamp(value[:8], value[8:] or "0")


def instance_time(ds: Dataset) -> tuple[str, str]:
    """(normalised timestamp, the attribute it came from) of one instance; ``("", "")`` if none."""
    value = str(ds.get("AcquisitionDateTime", "") or "")
    if not value:
        for group in (ds.get("PerFrameFunctionalGroupsSequence") or [])[:1]:
            for content in group.get("FrameContentSequence") or []:
                value = str(content.get("FrameAcquisitionDateTime", "") or "")
    if value and _from_datetime(value):
        return _from_datetime(value), "AcquisitionDateTime"
    for date_kw, time_kw in (("AcquisitionDate", "AcquisitionTime"), ("SeriesDate", "SeriesTime")):
        stamp = _stamp(str(ds.get(date_kw, "") or ""), str(ds.get(time_kw, "") or ""))
        if stamp:
            return stamp, f"{date_kw}/{time_kw}"
    return "", ""


def series_time(datasets: Sequence[Dataset]) -> tuple[str, str]:
    """The earliest instance's timestamp and its attribute (``("", "")`` when none has one)."""
    stamps = [s for s in (instance_time(ds) for ds in datasets) if s[0]]
    return min(stamps) if stamps else ("", "")


def minutes_between(earlier: str, later: str) -> float | None:
    """Minutes from one normalised timestamp to another (``None`` if either does not parse)."""
    try:
        a, b = (dt.datetime.strptime(s, "%Y%m%d%H%M%S.%f") for s in (earlier, later))
    except ValueError:
        return None
    return (b - a).total_seconds() / 60.0
