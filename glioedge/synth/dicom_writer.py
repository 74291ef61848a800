"""Write a volume as a realistic MR series (MR Image Storage or Enhanced MR Image Storage).

For tests, demos and benchmarks: the headers carry what a scanner sets for each sequence
(FLAIR as an inversion-recovery spin echo with a long TI, T1CE with a contrast agent, ...), the
patient is synthetic, and the objects pass ``dciodvfy`` apart from warnings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian
from pydicom.valuerep import DS

from glioedge.dicom_io.discovery import ENHANCED_MR_IMAGE_STORAGE, MR_IMAGE_STORAGE
from glioedge.dicom_io.uids import deterministic_uid
from glioedge.dicom_io.volume import Volume
from glioedge.errors import InputError
from glioedge.synth.enhanced_dicom import enhanced_mr_dataset

#: Per-sequence acquisition attributes, as a 1.5/3 T scanner of each vendor sets them.
SEQUENCE_PRESETS: dict[str, dict[str, Any]] = {
    "flair": {
        "SeriesDescription": "AX FLAIR", "ProtocolName": "t2_tirm_tra_dark-fluid",
        "SequenceName": "*tir2d1_15", "ScanningSequence": ["SE", "IR"],
        "SequenceVariant": ["SK", "SP", "MP"], "ScanOptions": ["IR"], "MRAcquisitionType": "2D",
        "RepetitionTime": 9000.0, "EchoTime": 81.0, "InversionTime": 2500.0, "FlipAngle": 150.0,
        "EchoTrainLength": 16,
    },
    "t1ce": {
        "SeriesDescription": "T1 MPRAGE +C", "ProtocolName": "t1_mprage_sag_p2_iso_post",
        "SequenceName": "*tfl3d1_16ns", "ScanningSequence": ["GR", "IR"],
        "SequenceVariant": ["SP", "MP"], "ScanOptions": ["IR"], "MRAcquisitionType": "3D",
        "RepetitionTime": 2300.0, "EchoTime": 2.98, "InversionTime": 900.0, "FlipAngle": 9.0,
        "EchoTrainLength": 1, "ContrastBolusAgent": "Gadobutrol 0.1 mmol/kg",
        "ContrastBolusRoute": "IV",
    },
    "t1": {
        "SeriesDescription": "T1 MPRAGE", "ProtocolName": "t1_mprage_sag_p2_iso",
        "SequenceName": "*tfl3d1_16ns", "ScanningSequence": ["GR", "IR"],
        "SequenceVariant": ["SP", "MP"], "ScanOptions": ["IR"], "MRAcquisitionType": "3D",
        "RepetitionTime": 2300.0, "EchoTime": 2.98, "InversionTime": 900.0, "FlipAngle": 9.0,
        "EchoTrainLength": 1,
    },
    "t2": {
        "SeriesDescription": "AX T2 TSE", "ProtocolName": "t2_tse_tra",
        "SequenceName": "*tse2d1_15", "ScanningSequence": ["SE"], "SequenceVariant": ["SK", "SP"],
        "ScanOptions": [], "MRAcquisitionType": "2D", "RepetitionTime": 5000.0,
        "EchoTime": 100.0, "FlipAngle": 150.0, "EchoTrainLength": 15,
    },
}


@dataclasses.dataclass(frozen=True)
class StudyInfo:
    """Study-level identifiers of a synthetic study (the patient is synthetic)."""

    study_instance_uid: str = deterministic_uid("synthetic-study", 1)
    frame_of_reference_uid: str = deterministic_uid("synthetic-frame-of-reference", 1)
    patient_name: str = "SYNTHETIC^PHANTOM"
    patient_id: str = "GLIOEDGE-SYN-0001"
    study_id: str = "1"
    accession_number: str = "SYN0001"
    date: str = "20240105"
    time: str = "101500"
    manufacturer: str = "SIEMENS"
    model: str = "Prisma"
    field_strength: float = 3.0


def _stored_values(array: np.ndarray) -> tuple[np.ndarray, float, float]:
    """uint16 stored values plus (slope, intercept) that reproduce ``array``."""
    if np.issubdtype(array.dtype, np.integer) or np.array_equal(array, np.round(array)):
        lo, hi = float(array.min()), float(array.max())
        if lo >= 0 and hi <= 65535:
            return array.astype(np.uint16), 1.0, 0.0
    lo, hi = float(array.min()), float(array.max())
    slope = (hi - lo) / 4095.0 if hi > lo else 1.0
    return np.round((array - lo) / slope).astype(np.uint16), slope, lo


def _common(study: StudyInfo, preset: Mapping[str, Any], series_uid: str,
            series_number: int, sop_class: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study.study_instance_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = study.date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = study.time
    ds.ReferringPhysicianName = ""
    ds.StudyID = study.study_id
    ds.AccessionNumber = study.accession_number
    ds.StudyDescription = "MRI BRAIN WITH AND WITHOUT CONTRAST"
    ds.Modality = "MR"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.PatientPosition = "HFS"
    ds.FrameOfReferenceUID = study.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = study.manufacturer
    ds.ManufacturerModelName = study.model
    ds.SoftwareVersions = "syngo MR XA30"
    ds.InstitutionName = "Synthetic Hospital"
    ds.StationName = "SYNMR01"
    ds.BodyPartExamined = "BRAIN"
    ds.MagneticFieldStrength = study.field_strength
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.BurnedInAnnotation = "NO"
    for keyword in ("SeriesDescription", "ProtocolName", "ContrastBolusAgent",
                    "ContrastBolusRoute"):
        if keyword in preset:
            setattr(ds, keyword, preset[keyword])
    return ds


def _file_meta(ds: Dataset, transfer_syntax: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    if transfer_syntax != ExplicitVRLittleEndian:
        ds.compress(transfer_syntax)


def synthetic_series(
    volume: Volume | np.ndarray,
    affine: np.ndarray | None = None,
    *,
    modality: str = "flair",
    storage: str = "mr",
    study: StudyInfo | None = None,
    series_number: int = 1,
    series_instance_uid: str | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    overrides: Mapping[str, Any] | None = None,
) -> list[Dataset]:
    """Build the datasets of one MR series from a volume (array ``(i, j, k)`` + LPS affine).

    Args:
        volume: A :class:`Volume`, or an array with ``affine``.
        affine: The affine when ``volume`` is an array.
        modality: ``flair``, ``t1ce``, ``t1`` or ``t2`` (selects :data:`SEQUENCE_PRESETS`).
        storage: ``mr`` (one instance per slice) or ``enhanced`` (one multi-frame instance).
        study: Study identifiers and equipment (default: one fixed synthetic study).
        series_number: SeriesNumber.
        series_instance_uid: Default derived from the study, series number and modality.
        transfer_syntax: e.g. JPEG-LS, JPEG 2000 or RLE lossless (encoded by pydicom plugins).
        overrides: Attributes set last, e.g. ``{"SeriesDescription": "3D T1 CE"}``; a value of
            ``None`` deletes the attribute.

    Returns:
        The datasets, with file meta, ready for ``dcmwrite``.

    Raises:
        InputError: unknown modality or storage, or a non-3-D array.
    """
    if isinstance(volume, Volume):
        array, affine = volume.array, volume.affine
    else:
        if affine is None:
            raise InputError("synthetic_series: an array needs an affine")
        array = np.asarray(volume)
    if modality not in SEQUENCE_PRESETS or storage not in ("mr", "enhanced"):
        raise InputError(f"synthetic_series: modality must be one of {sorted(SEQUENCE_PRESETS)} "
                         f"and storage 'mr' or 'enhanced', got {modality!r}, {storage!r}")
    if array.ndim != 3:
        raise InputError(f"synthetic_series: array must be 3-D, got shape {array.shape}")
    study = study or StudyInfo()
    preset = SEQUENCE_PRESETS[modality]
    series_uid = series_instance_uid or deterministic_uid(
        study.study_instance_uid, series_number, modality, storage)
    stored, slope, intercept = _stored_values(np.asarray(array))
    affine = np.asarray(affine, dtype=np.float64)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    direction = affine[:3, :3] / spacing
    orientation = [*direction[:, 0], *direction[:, 1]]
    pixel_spacing = [float(spacing[1]), float(spacing[0])]
    positions = [affine[:3, :3] @ np.array([0.0, 0.0, k]) + affine[:3, 3]
                 for k in range(array.shape[2])]
    frames = [np.ascontiguousarray(stored[:, :, k].T) for k in range(array.shape[2])]
    sop_class = ENHANCED_MR_IMAGE_STORAGE if storage == "enhanced" else MR_IMAGE_STORAGE
    base = _common(study, preset, series_uid, series_number, sop_class)
    geometry = {"orientation": orientation, "pixel_spacing": pixel_spacing,
                "positions": positions, "thickness": float(spacing[2]),
                "slope": slope, "intercept": intercept}
    if storage == "enhanced":
        ds = enhanced_mr_dataset(base, preset, frames, geometry, study)
        ds.SOPInstanceUID = deterministic_uid(series_uid, "frames")
        datasets = [ds]
    else:
        datasets = [_classic(base, preset, frame, k, positions[k], geometry, series_uid)
                    for k, frame in enumerate(frames)]
    for ds in datasets:
        for keyword, value in (overrides or {}).items():
            if value is None:
                if keyword in ds:
                    delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
        _file_meta(ds, transfer_syntax)
    return datasets


def _classic(base: Dataset, preset: Mapping[str, Any], frame: np.ndarray, k: int,
             position: np.ndarray, geometry: Mapping[str, Any], series_uid: str) -> Dataset:
    ds = Dataset()
    ds.update(base)
    ds.SOPInstanceUID = deterministic_uid(series_uid, k)
    ds.InstanceNumber = k + 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NORM"]
    ds.AcquisitionNumber = 1
    ds.ImagePositionPatient = [round(float(v), 6) for v in position]
    ds.ImageOrientationPatient = [round(float(v), 8) for v in geometry["orientation"]]
    ds.PixelSpacing = [round(v, 6) for v in geometry["pixel_spacing"]]
    ds.SliceThickness = round(geometry["thickness"], 6)
    ds.SpacingBetweenSlices = round(geometry["thickness"], 6)
    normal = np.cross(geometry["orientation"][:3], geometry["orientation"][3:])
    ds.SliceLocation = round(float(position @ normal), 6)
    for keyword in ("ScanningSequence", "SequenceVariant", "ScanOptions", "MRAcquisitionType",
                    "SequenceName", "RepetitionTime", "EchoTime", "InversionTime",
                    "FlipAngle", "EchoTrainLength"):
        if keyword in preset:
            setattr(ds, keyword, preset[keyword])
    ds.AngioFlag = "N"
    ds.NumberOfAverages = 1
    ds.ImagingFrequency = 123.2
    ds.ImagedNucleus = "1H"
    ds.EchoNumbers = 1
    ds.PercentSampling = 100
    ds.PercentPhaseFieldOfView = 100
    ds.PixelBandwidth = 220
    ds.ReceiveCoilName = "HeadNeck_20"
    ds.TransmitCoilName = "Body"
    ds.InPlanePhaseEncodingDirection = "ROW"
    ds.Rows, ds.Columns = frame.shape
    if geometry["slope"] != 1.0 or geometry["intercept"] != 0.0:
        ds.RescaleSlope = DS(geometry["slope"], auto_format=True)
        ds.RescaleIntercept = DS(geometry["intercept"], auto_format=True)
        ds.RescaleType = "US"
    ds.PixelData = frame.tobytes()
    ds["PixelData"].VR = "OW"
    return ds


def write_synthetic_series(out_dir: str | Path, volume: Volume | np.ndarray,
                           affine: np.ndarray | None = None, **options: Any) -> list[Path]:
    """Write :func:`synthetic_series` to ``out_dir`` (one file per instance); returns the paths.

    The file names are the SOP Instance UIDs (digits and dots only), so no DICOM value that a
    person typed ends up in a path.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in synthetic_series(volume, affine, **options):
        path = out_dir / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths

