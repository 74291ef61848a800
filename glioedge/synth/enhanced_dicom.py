"""The Enhanced MR Image Storage (multi-frame) part of the synthetic writer.

Fills the Enhanced MR Image, MR Pulse Sequence and Multi-frame Dimension modules and the
functional groups that PS3.3 A.36-2 requires for an ORIGINAL image: geometry per frame, the
MR acquisition macros once in the shared groups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.valuerep import DS

from glioedge.dicom_io.uids import deterministic_uid

_ENHANCED_IMAGE_TYPE = ["ORIGINAL", "PRIMARY", "M", "NONE"]


def _item(**attributes: Any) -> DicomSequence:
    ds = Dataset()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return DicomSequence([ds])


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    ds = Dataset()
    ds.CodeValue, ds.CodingSchemeDesignator, ds.CodeMeaning = value, scheme, meaning
    return ds


def _shared_groups(preset: Mapping[str, Any], geometry: Mapping[str, Any]) -> Dataset:
    is_ir = "IR" in preset["ScanningSequence"]
    is_gre = "GR" in preset["ScanningSequence"]
    shared = Dataset()
    shared.PixelMeasuresSequence = _item(
        PixelSpacing=[DS(v, auto_format=True) for v in geometry["pixel_spacing"]],
        SliceThickness=DS(geometry["thickness"], auto_format=True),
        SpacingBetweenSlices=DS(geometry["thickness"], auto_format=True))
    shared.PlaneOrientationSequence = _item(
        ImageOrientationPatient=[DS(round(float(v), 8), auto_format=True)
                                 for v in geometry["orientation"]])
    anatomy = Dataset()
    anatomy.AnatomicRegionSequence = DicomSequence([_code("12738006", "SCT", "Brain")])
    anatomy.FrameLaterality = "U"
    shared.FrameAnatomySequence = DicomSequence([anatomy])
    shared.PixelValueTransformationSequence = _item(
        RescaleSlope=DS(geometry["slope"], auto_format=True),
        RescaleIntercept=DS(geometry["intercept"], auto_format=True), RescaleType="US")
    shared.MRImageFrameTypeSequence = _item(
        FrameType=_ENHANCED_IMAGE_TYPE, PixelPresentation="MONOCHROME",
        VolumetricProperties="VOLUME", VolumeBasedCalculationTechnique="NONE",
        ComplexImageComponent="MAGNITUDE", AcquisitionContrast="T1" if is_gre else "T2")
    shared.MRTimingAndRelatedParametersSequence = _item(
        RepetitionTime=preset["RepetitionTime"], FlipAngle=preset["FlipAngle"],
        EchoTrainLength=preset["EchoTrainLength"],
        RFEchoTrainLength=0 if is_gre else preset["EchoTrainLength"],
        GradientEchoTrainLength=preset["EchoTrainLength"] if is_gre else 0,
        OperatingModeSequence=_item(OperatingModeType="RF", OperatingMode="IEC_NORMAL"),
        SpecificAbsorptionRateSequence=_item(
            SpecificAbsorptionRateDefinition="IEC_WHOLE_BODY", SpecificAbsorptionRateValue=0.4))
    shared.MRFOVGeometrySequence = _item(
        InPlanePhaseEncodingDirection="ROW", MRAcquisitionFrequencyEncodingSteps=256,
        MRAcquisitionPhaseEncodingStepsInPlane=256, PercentSampling=100.0,
        PercentPhaseFieldOfView=100.0)
    shared.MREchoSequence = _item(EffectiveEchoTime=preset["EchoTime"])
    shared.MRModifierSequence = _item(
        InversionRecovery="YES" if is_ir else "NO",
        FlowCompensation="NONE", T2Preparation="NO", SpectrallySelectedExcitation="NONE",
        SpatialPresaturation="NONE", PartialFourier="NO", ParallelAcquisition="NO")
    if is_ir:
        shared.MRModifierSequence[0].InversionTimes = [preset["InversionTime"]]
    shared.MRImagingModifierSequence = _item(
        MagnetizationTransfer="NONE", BloodSignalNulling="NO", Tagging="NONE",
        TransmitterFrequency=123.2, PixelBandwidth=220.0)
    shared.MRReceiveCoilSequence = _item(
        ReceiveCoilName="HeadNeck_20", ReceiveCoilManufacturerName="SIEMENS",
        ReceiveCoilType="MULTICOIL", QuadratureReceiveCoil="NO",
        MultiCoilDefinitionSequence=_item(MultiCoilElementName="HE1-4", MultiCoilElementUsed="YES"))
    shared.MRTransmitCoilSequence = _item(
        TransmitCoilName="Body", TransmitCoilManufacturerName="SIEMENS", TransmitCoilType="BODY")
    shared.MRAveragesSequence = _item(NumberOfAverages=1.0)
    return shared


def enhanced_mr_dataset(base: Dataset, preset: Mapping[str, Any],
                        frames: Sequence[np.ndarray], geometry: Mapping[str, Any],
                        study: Any) -> Dataset:
    """One Enhanced MR Image Storage instance holding ``frames`` (each ``(rows, columns)``).

    ``base`` carries the patient, study, series, equipment and pixel-format attributes;
    ``geometry`` the orientation, pixel spacing, frame positions, thickness and rescale.
    """
    ds = Dataset()
    ds.update(base)
    ds.InstanceNumber = 1
    ds.ImageType = _ENHANCED_IMAGE_TYPE
    ds.AcquisitionNumber = 1
    ds.AcquisitionDateTime = f"{study.date}{study.time}"
    ds.AcquisitionDuration = 300.0
    ds.ContentQualification = "PRODUCT"
    ds.ResonantNucleus = "1H"
    ds.KSpaceFiltering = "NONE"
    ds.ApplicableSafetyStandardAgency = "IEC"
    ds.DeviceSerialNumber = "SYN-00042"
    ds.PixelPresentation = "MONOCHROME"
    ds.VolumetricProperties = "VOLUME"
    ds.VolumeBasedCalculationTechnique = "NONE"
    ds.ComplexImageComponent = "MAGNITUDE"
    ds.AcquisitionContrast = "T1" if "GR" in preset["ScanningSequence"] else "T2"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"
    ds.AcquisitionContextSequence = DicomSequence()
    # MR Pulse Sequence module
    ds.PulseSequenceName = preset["SequenceName"].lstrip("*")
    ds.MRAcquisitionType = preset["MRAcquisitionType"]
    ds.EchoPulseSequence = "GRADIENT" if "GR" in preset["ScanningSequence"] else "SPIN"
    if ds.EchoPulseSequence == "SPIN":
        ds.MultipleSpinEcho = "NO"
    ds.MultiPlanarExcitation = "NO"
    ds.PhaseContrast = "NO"
    ds.TimeOfFlightContrast = "NO"
    ds.SteadyStatePulseSequence = "NONE"
    ds.EchoPlanarPulseSequence = "NO"
    ds.SaturationRecovery = "NO"
    ds.SpectrallySelectedSuppression = "NONE"
    ds.OversamplingPhase = "NONE"
    ds.GeometryOfKSpaceTraversal = "RECTILINEAR"
    ds.RectilinearPhaseEncodeReordering = "LINEAR"
    ds.SegmentedKSpaceTraversal = "PARTIAL" if preset["EchoTrainLength"] > 1 else "SINGLE"
    if ds.MRAcquisitionType == "3D":
        ds.CoverageOfKSpace = "FULL"
    ds.NumberOfKSpaceTrajectories = 1
    # Multi-frame Dimension module: stack id + in-stack position
    organisation_uid = deterministic_uid(ds.SeriesInstanceUID, "dimension-organisation")
    ds.DimensionOrganizationSequence = _item(DimensionOrganizationUID=organisation_uid)
    ds.DimensionOrganizationType = "3D"
    dims = []
    for pointer, group in ((0x00209056, 0x00209111), (0x00209057, 0x00209111)):
        item = Dataset()
        item.DimensionOrganizationUID = organisation_uid
        item.DimensionIndexPointer = pointer
        item.FunctionalGroupPointer = group
        dims.append(item)
    ds.DimensionIndexSequence = DicomSequence(dims)
    ds.SharedFunctionalGroupsSequence = DicomSequence([_shared_groups(preset, geometry)])
    per_frame = []
    for k, position in enumerate(geometry["positions"]):
        item = Dataset()
        item.FrameContentSequence = _item(
            FrameAcquisitionNumber=1, FrameReferenceDateTime=ds.AcquisitionDateTime,
            FrameAcquisitionDateTime=ds.AcquisitionDateTime, FrameAcquisitionDuration=300.0,
            StackID="1", InStackPositionNumber=k + 1, DimensionIndexValues=[1, k + 1])
        item.PlanePositionSequence = _item(
            ImagePositionPatient=[DS(round(float(v), 6), auto_format=True) for v in position])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    ds.NumberOfFrames = len(frames)
    ds.Rows, ds.Columns = frames[0].shape
    ds.PixelData = np.stack(frames).tobytes()
    ds["PixelData"].VR = "OW"
    return ds
