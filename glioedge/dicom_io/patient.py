"""One patient per fused study: the chosen series must agree on who they show.

Intake groups series by StudyInstanceUID; a study assembled by hand, a PACS merge gone wrong or a
sender that reuses study UIDs can put another patient's series beside the T1CE. Fusing them
would segment one patient's tumour on another's anatomy, so series whose patient identity
disagrees are refused. The reason names the tags, never their values (no PHI in messages).
An empty or absent value (an anonymised series) is not a disagreement.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydicom.dataset import Dataset

from glioedge.errors import InputError

#: The identity tags compared, with their (group,element) for the message.
IDENTITY_TAGS = {"PatientID": "(0010,0020)", "PatientName": "(0010,0010)",
                 "PatientBirthDate": "(0010,0030)"}


def _normalised(keyword: str, ds: Dataset) -> str:
    value = str(ds.get(keyword, "") or "").strip()
    if keyword == "PatientName":  # DOE^JOHN and DOE^JOHN^^ are one name; case is not identity
        value = value.rstrip("^ ").upper()
    return value


def check_same_patient(chosen: Mapping[str, Any]) -> None:
    """Refuse series (modality → :class:`~glioedge.dicom_io.discovery.Series`) that disagree on
    PatientID, PatientName or PatientBirthDate, within a series or between series.

    Raises:
        InputError: naming the series (by modality and SeriesInstanceUID) and the tags that
            disagree, never the values.
    """
    disagree: dict[str, None] = {}
    seen: dict[str, dict[str, str]] = {keyword: {} for keyword in IDENTITY_TAGS}
    for modality, series in chosen.items():
        label = f"{str(getattr(modality, 'value', modality)).upper()} ({series.series_instance_uid})"
        for ds in series.datasets:
            for keyword in IDENTITY_TAGS:
                value = _normalised(keyword, ds)
                if not value:
                    continue
                if any(v != value for v in seen[keyword].values()):
                    disagree[keyword] = None
                seen[keyword].setdefault(label, value)
    if disagree:
        tags = ", ".join(f"{k} {IDENTITY_TAGS[k]}" for k in disagree)
        holders = sorted({label for k in disagree for label in seen[k]})
        raise InputError(f"the series chosen for fusion disagree on {tags}: they may show different "
                         f"patients; refusing to fuse {', '.join(holders)} (check the study in the "
                         "PACS: a merge or a reused StudyInstanceUID)")
