"""A DICOM Comprehensive 3D SR (TID 1500 Measurement Report) with the tumour volumes.

One volumetric measurement group per SEG segment (NCR, ED, ET) references its segment; the
composite regions TC and WT go into measurement groups of their own. UIDs are derived from the
SEG's, so a re-run gives the same SR. Written with highdicom.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from glioedge.dicom_io import deterministic_uid
from glioedge.errors import InputError
from glioedge.vocabulary import REGION_DESCRIPTIONS, SEGMENTS

__all__ = ["volume_report_sr"]

VOLUME = hd.sr.CodedConcept("118565006", "SCT", "Volume")
MILLILITRE = hd.sr.CodedConcept("ml", "UCUM", "milliliter")
MR_BRAIN = hd.sr.CodedConcept("24590-2", "LN", "MR Brain")
#: Composite regions reported in measurement groups of their own (ET is a segment already).
_COMPOSITE_REGIONS = ("TC", "WT")
_NEOPLASM = hd.sr.CodedConcept("108369006", "SCT", "Neoplasm")
#: Private codes of the quality finding (no standard code says "trust this segmentation?").
_SCHEME = "99GLIOEDGE"
_QUALITY = hd.sr.CodedConcept("QUALITY", _SCHEME, "Segmentation quality verdict")
_QUALITY_REASON = hd.sr.CodedConcept("QREASON", _SCHEME, "Segmentation quality reason")
_FINDING = hd.sr.CodedConcept("QFINDING", _SCHEME, "Segmentation finding")
_VERDICT_MEANING = {"ok": "OK: no quality concern found",
                    "review": "REVIEW: check the segmentation before use",
                    "reject": "REJECT: the segmentation is not to be trusted"}


def _code(value: str, meaning: str) -> hd.sr.CodedConcept:
    """A private code; DICOM code values are at most 16 characters, meanings 64."""
    return hd.sr.CodedConcept(value[:16], _SCHEME, meaning[:64])


def _quality_group(quality: Mapping[str, Any], seg_uid: str, algorithm: Any) -> Any:
    """The quality verdict as a finding: verdict, finding (tumour / no tumour found), reasons."""
    verdict = str(quality.get("verdict", "ok"))
    evaluations = [
        hd.sr.QualitativeEvaluation(_QUALITY, _code(verdict.upper(), _VERDICT_MEANING.get(verdict, verdict))),
        hd.sr.QualitativeEvaluation(_FINDING, _code(str(quality.get("finding", "")).upper().replace(" ", "_"),
                                                    str(quality.get("finding", "")))),
    ]
    for reason in quality.get("reasons", []):
        if reason.get("severity") != "info":
            evaluations.append(hd.sr.QualitativeEvaluation(
                _QUALITY_REASON, _code(reason["code"], f"{reason['severity'].upper()}: {reason['message']}")))
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=deterministic_uid(seg_uid, "sr-tracking", "quality"),
            identifier=f"Quality: {verdict.upper()}"),
        algorithm_id=algorithm, qualitative_evaluations=evaluations)


def volume_report_sr(
    seg: Dataset | None, sources: Sequence[Dataset], volumes_ml: Mapping[str, float], bundle_id: str,
    series_number: int = 9902, quality: Mapping[str, Any] | None = None,
) -> Dataset:
    """The SR of a segmentation: its SEG, the source datasets, the volumes (mL) and the bundle id;
    with ``quality`` (``Quality.to_dict()``) also the quality verdict as a finding.

    Raises:
        InputError: there is no SEG (no DICOM source) or no source datasets.
    """
    if seg is None or not sources:
        raise InputError("an SR needs the SEG and the source series (segment a DICOM study)")
    seg_uid = str(seg.SOPInstanceUID)
    algorithm = hd.sr.AlgorithmIdentification(name="glioedge", version=str(seg.SoftwareVersions),
                                              parameters=[f"bundle {bundle_id}"])
    ref_series = str(seg.ReferencedSeriesSequence[0].SeriesInstanceUID)
    groups: list = []
    for number, spec in SEGMENTS.items():
        label = spec.label
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=deterministic_uid(seg_uid, "sr-tracking", number), identifier=label),
            referenced_segment=hd.sr.ReferencedSegment(
                sop_class_uid=str(seg.SOPClassUID), sop_instance_uid=seg_uid,
                segment_number=number,
                source_series=hd.sr.SourceSeriesForSegmentation(ref_series)),
            finding_type=hd.sr.CodedConcept(*spec.property_type),
            algorithm_id=algorithm,
            measurements=[hd.sr.Measurement(name=VOLUME, value=float(volumes_ml[label]),
                                            unit=MILLILITRE, algorithm_id=algorithm)],
        ))
    for label in _COMPOSITE_REGIONS:
        text = REGION_DESCRIPTIONS[label]
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=deterministic_uid(seg_uid, "sr-tracking", label), identifier=f"{label}: {text}"),
            finding_type=_NEOPLASM, algorithm_id=algorithm,
            measurements=[hd.sr.Measurement(name=VOLUME, value=float(volumes_ml[label]),
                                            unit=MILLILITRE, algorithm_id=algorithm)],
        ))
    if quality:
        groups.append(_quality_group(quality, seg_uid, algorithm))
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=deterministic_uid("glioedge-device", bundle_id), name="glioedge",
            manufacturer_name="glioedge", model_name="glioedge"))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=MR_BRAIN, imaging_measurements=groups)
    series_uid = deterministic_uid(seg_uid, "sr-series")
    return hd.sr.Comprehensive3DSR(
        evidence=[seg, *sources], content=report[0], series_instance_uid=series_uid,
        series_number=series_number, sop_instance_uid=deterministic_uid(series_uid, "instance"),
        instance_number=1, manufacturer="glioedge", is_complete=True,
        series_description="glioedge tumour volumes",
    )
