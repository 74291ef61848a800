"""One call for the runtime: a folder (or datasets) → chosen series → fused volumes.

Headers first: the folder is scanned without pixel data, the series are chosen from their headers,
and only the chosen series are decoded. :attr:`LoadedStudy.intake` records what was not used and
why (ignored files by reason, series not chosen, duplicate instances, repeated acquisitions), without
paths or patient data, for the report.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from glioedge.dicom_io.completeness import check_completeness, completeness_record
from glioedge.dicom_io.discovery import Series, Study, group_datasets, scan_folder, single_study
from glioedge.dicom_io.fusion import fuse
from glioedge.dicom_io.headers import IgnoredFile, sop_class_name
from glioedge.dicom_io.modality import (
    ModalityRules,
    ModalitySelection,
    identify_modalities,
    load_rules,
    series_dict,
)
from glioedge.dicom_io.patient import check_same_patient
from glioedge.dicom_io.series import load_series
from glioedge.dicom_io.volume import Volume
from glioedge.errors import InputError

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class LoadedStudy:
    """Fused volumes (all on the reference grid) and how they were chosen.

    Attributes:
        volumes: modality → volume on the reference grid.
        series: modality → the source series (its datasets are what ``write_seg`` references).
        selection: The modality decision with every series' scores.
        reference: The modality whose grid the volumes share.
        transforms: Rigid transforms applied by registration, if any.
        study: Everything discovery found (all series, ignored files, duplicates).
        intake: What was used and what not, and why (:func:`intake_record`).
    """

    volumes: dict[str, Volume]
    series: dict[str, Series]
    selection: ModalitySelection
    reference: str
    transforms: dict[str, dict[str, Any]]
    study: Study | None = dataclasses.field(default=None, repr=False)
    intake: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable record for the job log (no patient data)."""
        return {"reference": self.reference, "selection": self.selection.to_dict(),
                "transforms": self.transforms, "intake": self.intake}

    def file_status(self) -> dict[str, str]:
        """Every input (file path or ``<memory #n>``) → ``used`` or ``ignored: <reason>``.

        For operators and tests: the keys are paths, which may carry patient names; keep them out
        of logs and reports.
        """
        if self.study is None:
            return {}
        used = {s.series_instance_uid for s in self.series.values()}
        status = {i.source: f"ignored: {i.reason}" for i in self.study.ignored}
        why_not = {c.series.series_instance_uid: c.excluded or "not chosen"
                   for c in self.selection.candidates}
        for uid, series in self.study.series.items():
            for source in series.sources:
                status[source] = "used" if uid in used else \
                    f"ignored: series not used ({why_not.get(uid, 'not chosen')})"
            for d in series.duplicates:
                status[d.dropped] = f"ignored: second copy of an instance (pixel data {d.pixels})"
        return status


def _the_study(studies: list[Study], where: str, required: Sequence[str],
               rules: ModalityRules | None) -> Study:
    """The one study of the input; among several, the only one that has the required series.

    A CD or viewer export often carries the patient's prior studies, and a folder may hold a
    stray image of another study: those are ignored (listed in ``Study.ignored``) when exactly one
    study is complete. Otherwise the input is ambiguous.

    Raises:
        InputError: several studies, and not exactly one of them has the required series.
    """
    if len(studies) == 1:
        return studies[0]
    complete = []
    for candidate in studies:
        try:
            identify_modalities(candidate, required, (), rules)
        except InputError:
            continue
        complete.append(candidate)
    if len(complete) != 1:
        return single_study(studies, where)  # raises, listing the studies
    study = complete[0]
    names = ", ".join(m.upper() for m in required)
    for other in studies:
        if other is study:
            continue
        for series in other.series.values():
            for ds, source in zip(series.datasets, series.sources, strict=True):
                study.ignored.append(IgnoredFile(
                    source, f"MR image of another study, which lacks the required series ({names})",
                    sop_class_name(str(ds.get("SOPClassUID", ""))), str(ds.get("SOPInstanceUID", ""))))
            study.ignored.extend(IgnoredFile(
                d.dropped, f"MR image of another study (a second copy of one of its instances), "
                f"which lacks the required series ({names})", "", d.sop_instance_uid)
                for d in series.duplicates)
    logger.info("%s holds %d studies; using %s, the only one with %s", where, len(studies),
                study.study_instance_uid, names)
    return study


def intake_record(study: Study, selection: ModalitySelection) -> dict[str, Any]:
    """What intake used and left out, and why: JSON-safe, no paths, no patient data."""
    used = {s.series_instance_uid for s in selection.chosen.values()}
    why_not = {c.series.series_instance_uid: c.excluded or "not chosen" for c in selection.candidates}
    return {
        "instances_used": sum(len(s.datasets) for s in selection.chosen.values()),
        "series_not_used": [{**series_dict(s), "instances": len(s.datasets),
                             "why": why_not.get(uid, "not chosen")}
                            for uid, s in study.series.items() if uid not in used],
        # A reader's message may quote the file; reports carry no paths.
        "ignored_files": dict(Counter(i.reason.replace(i.source, "<file>")
                                      for i in study.ignored).most_common()),
        "duplicates": [{**d.to_dict(), "series_instance_uid": s.series_instance_uid}
                       for s in study.series.values() for d in s.duplicates],
        "repeats": {m: dict(r) for m, r in selection.repeats.items()},
    }


def load_study(
    source: str | Path | Sequence[Dataset],
    required: Sequence[str] = ("flair", "t1ce"),
    rules: ModalityRules | str | Path | None = None,
    reference: str = "t1ce",
    *,
    optional: Sequence[str] = (),
    register: bool = False,
) -> LoadedStudy:
    """Scan, choose FLAIR/T1CE (and others), load and fuse them on the reference grid.

    Args:
        source: A folder scanned recursively, or in-memory datasets of one study.
        required: Modalities that must be present.
        rules: Modality rules, or the path of a JSON/TOML rule file.
        reference: Modality whose grid the volumes are resampled onto.
        optional: Modalities loaded when present (e.g. ``("t1", "t2")``).
        register: Rigidly register series in another frame of reference instead of failing.

    Returns:
        The fused volumes and the selection.

    Raises:
        InputError: no study, several studies of which not exactly one has the required series
            (others are ignored), a required modality missing or ambiguous, a series
            with bad geometry, frames of reference that differ (without ``register``), series
            whose PatientID / PatientName / PatientBirthDate disagree, or an implausible
            registration.
        ConfigError: an invalid rule file.
    """
    if reference not in required:
        raise InputError(f"reference {reference!r} must be one of the required modalities "
                         f"{tuple(required)}")
    if isinstance(source, (str, Path)):
        studies = scan_folder(source)
        where = str(source)
    else:
        studies = group_datasets(source)
        where = "the datasets given"
    if isinstance(rules, (str, Path)):
        rules = load_rules(rules)
    study = _the_study(studies, where, required, rules)
    selection = identify_modalities(study, required, optional, rules)
    check_same_patient(selection.chosen)
    volumes = {m: load_series(s) for m, s in selection.chosen.items()}
    fused = fuse(volumes, reference, register=register)
    intake = intake_record(study, selection)
    findings = check_completeness(selection.chosen)
    intake["completeness"] = completeness_record(findings)
    for finding in findings:
        logger.warning("study %s may be incomplete: %s", study.study_instance_uid, finding.message)
    logger.info("study %s: %s on the %s grid %s; %d instance(s) used, %d series not used, "
                "%d file(s) ignored, %d duplicate instance(s)", study.study_instance_uid,
                ", ".join(f"{m}={s.series_number}" for m, s in selection.chosen.items()),
                reference, volumes[reference].shape, intake["instances_used"],
                len(intake["series_not_used"]), len(study.ignored), len(intake["duplicates"]))
    return LoadedStudy(fused.volumes, dict(selection.chosen), selection, reference,
                       fused.transforms, study, intake)
