"""The PHI scrubber of the daemon's logs: whole words, short name parts, any case, any script."""

from __future__ import annotations

import io
import json
import logging

import pydicom
import pytest

from glioedge.runtime.daemon.logging import JsonFormatter, PhiFilter, _Scrubber, remember_phi


def _scrubber(*patients: tuple[str, str, str]) -> _Scrubber:
    scrubber = _Scrubber()
    for name, pid, birth in patients:
        parts = [p for p in name.replace("^", " ").split() if p]
        scrubber.add_values([name, pid, birth])
        scrubber.add_values(parts, 2)
    return scrubber


PATIENTS = [("Ng^Li", "123", "19800101"), ("Müller^Jürgen", "P-4711", "19611224"),
            ("O'Brien^Seán", "A77", "20010309")]


@pytest.mark.parametrize("text", [
    "Ng Li", "NG^LI", "ng_li", "folder LI", "Müller, Jürgen", "MUELLER JUERGEN", "muller jurgen",
    "MÜLLER", "O'Brien Seán", "OBRIEN_SEAN", "o'brien", "seán", "SEÁN", "p-4711", "P_4711",
    "born 19611224.", "id 123", "a77",
])
def test_every_form_of_the_values_is_scrubbed(text: str) -> None:
    out = _scrubber(*PATIENTS).scrub(text)
    assert "[phi]" in out
    lowered = out.casefold()
    for leak in ("ng", "li", "müller", "mueller", "muller", "jürgen", "juergen", "jurgen", "brien",
                 "seán", "sean", "4711", "19611224", "a77"):
        assert leak not in lowered.replace("[phi]", ""), (text, out)


@pytest.mark.parametrize("text", [
    "1.2.840.113619.2.123.4", "SOP 1.2.123", "IM123.dcm", "series 1230", "x123y", "lithium",
    "single", "angle 0.123", "MULLERITE", "Seance",
])
def test_only_whole_words_are_scrubbed(text: str) -> None:
    """A 3-digit patient ID leaves UIDs, file names and longer numbers alone; ``Li`` and ``Ng``
    leave the words that contain them alone."""
    assert _scrubber(*PATIENTS).scrub(text) == text


def test_json_log_fields_with_non_ascii_values_are_scrubbed() -> None:
    ds = pydicom.Dataset()
    ds.PatientName, ds.PatientID = "Sørensen^Åse", "NO-99812"
    remember_phi(ds)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(PhiFilter())
    logger = logging.getLogger("glioedge.test.scrub_unicode")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("cannot read", extra={"files": ["in/Sørensen Åse/IM1"],
                                             "detail": {"who": "SØRENSEN ÅSE", "id": "no-99812"}})
    finally:
        logger.removeHandler(handler)
    record = json.loads(stream.getvalue())
    flat = json.dumps(record, ensure_ascii=False).casefold()
    for leak in ("sørensen", "åse", "99812"):
        assert leak not in flat, flat
    assert record["files"] == ["in/[phi] [phi]/IM1"] or record["files"] == ["in/[phi]/IM1"]


def test_remembering_a_value_does_not_rebuild_anything() -> None:
    """Adding a study's values to 50 000 known ones is a few dictionary inserts: the scrubber
    keeps no compiled expression over the values (the old one was rebuilt for every study)."""
    scrubber = _Scrubber()
    scrubber.add_values([f"VAL{n:06d}" for n in range(50_000)])
    assert not hasattr(scrubber, "_pattern")
    assert scrubber.scrub("val049999 and VAL000001") == "[phi] and [phi]"
    scrubber.add_values(["NEWNAME"])
    assert scrubber.scrub("newname") == "[phi]"
