"""Write the model's label map as a DICOM Segmentation (highdicom).

Segments (codes and colours from :data:`glioedge.vocabulary.SEGMENTS`): 1 NCR (SCT 6574001
Necrosis), 2 ED (SCT 79654002 Edema), 3 ET (NCIt C113842
Enhancing Lesion), category SCT 49755003 Morphologically Abnormal Structure, anatomic region
Brain. BINARY (default) or LABELMAP, always uncompressed Explicit VR Little Endian — never JPEG
2000, which breaks dcmqi, Orthanc transcoding and pydicom for 1-bit BINARY frames.

The SEG references only the series its frames lie on (SourceImageSequence, per-frame
DerivationImageSequence and ReferencedSeriesSequence): OHIF attaches a SEG to the first display set
of any series it lists, and fails on one its frames do not lie on (docs/viewers.md). The other
series used are named in the algorithm parameters (and referenced by the SR and report.json).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian

from glioedge.dicom_io.series import series_grid
from glioedge.dicom_io.uids import deterministic_uid
from glioedge.dicom_io.volume import Volume
from glioedge.errors import InputError
from glioedge.vocabulary import NUM_CLASSES, SEG_ANATOMY, SEG_CATEGORY, SEGMENTS

logger = logging.getLogger(__name__)

CATEGORY = hd.sr.CodedConcept(*SEG_CATEGORY)
BRAIN = hd.sr.CodedConcept(*SEG_ANATOMY)
SEGMENTATION_TYPES = ("BINARY", "LABELMAP")


def glioedge_version() -> str:
    """glioedge's installed version, or ``0.0.0+unknown`` in an uninstalled source tree."""
    try:
        return version("glioedge")
    except PackageNotFoundError:
        return "0.0.0+unknown"


def segment_descriptions(bundle_id: str, series_uid: str, other_series: Sequence[str] = (),
                         ) -> list[hd.seg.SegmentDescription]:
    """The three tumour segments, with glioedge as the algorithm and tracking UIDs per series.

    ``other_series``: SeriesInstanceUIDs of the further inputs, named in AlgorithmParameters
    (``other_series=uid+uid``) since the SEG references only the series its frames lie on.
    """
    parameters = {"model_bundle": bundle_id}
    if other_series:
        parameters["other_series"] = "+".join(other_series)
    algorithm = hd.AlgorithmIdentificationSequence(
        name="glioedge", family=codes.cid7162.ArtificialIntelligence, version=glioedge_version(),
        parameters=parameters,
    )
    return [
        hd.seg.SegmentDescription(
            segment_number=number, segment_label=spec.label,
            segmented_property_category=CATEGORY,
            segmented_property_type=hd.sr.CodedConcept(*spec.property_type),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            tracking_uid=deterministic_uid(series_uid, bundle_id, "tracking", number),
            tracking_id=f"glioedge {spec.tracking}", anatomic_regions=[BRAIN],
            display_color=hd.color.CIELabColor.from_rgb(*spec.rgb),
        )
        for number, spec in SEGMENTS.items()
    ]


def write_seg(
    label_map: np.ndarray,
    reference: Sequence[Dataset],
    other_sources: Sequence[Dataset] = (),
    *,
    segmentation_type: str = "BINARY",
    omit_empty_frames: bool = True,
    series_number: int = 9901,
    series_description: str = "glioedge tumour segmentation",
    bundle_id: str = "unknown",
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
    manufacturer: str = "glioedge",
    device_serial_number: str = "0",
) -> Dataset:
    """Encode ``label_map`` (classes 0..3, indexed ``(i, j, k)`` on the reference grid) as SEG.

    The grid is the one :func:`load_series` gives for ``reference``: ``k`` runs along the slice
    normal whatever the order of the datasets, so frames are placed by explicit plane positions.

    Args:
        label_map: uint8-compatible array of 0 background, 1 NCR, 2 ED, 3 ET.
        reference: All datasets of the reference series (pixel data is needed to check the grid
            only if it is not cached; headers suffice for single-frame series).
        other_sources: Datasets of the other series used: their SeriesInstanceUIDs go into the
            algorithm parameters and the SEG's UID, not into its image references.
        segmentation_type: ``BINARY`` (default) or ``LABELMAP``.
        omit_empty_frames: Leave out frames with no segment (some viewers want them all).
        series_number: SeriesNumber of the SEG series.
        series_description: SeriesDescription of the SEG series.
        bundle_id: The model bundle's id, in the algorithm identification and the UIDs.
        series_instance_uid: Default: deterministic from the source UIDs, bundle and options.
        sop_instance_uid: Default: deterministic from the series UID.
        manufacturer: Manufacturer of the SEG (the software's maker).
        device_serial_number: DeviceSerialNumber (of the edge box).

    Returns:
        The SEG dataset (``highdicom.seg.Segmentation``), ready for ``save_as``.

    Raises:
        InputError: unknown segmentation type, labels outside 0..3, or a label map whose shape
            does not match the reference grid.
    """
    kind = str(getattr(segmentation_type, "value", segmentation_type)).upper()
    if kind not in SEGMENTATION_TYPES:
        raise InputError(f"segmentation_type must be one of {SEGMENTATION_TYPES}, got {kind!r}")
    labels = np.asarray(label_map)
    if labels.size and (labels.min() < 0 or labels.max() > NUM_CLASSES - 1 or
                        not np.array_equal(labels, np.round(labels))):
        raise InputError(f"label map must hold the classes 0..3, found values "
                         f"{np.unique(labels)[:10].tolist()}")
    if not reference:
        raise InputError("write_seg: no reference datasets given")
    shape, grid_affine = series_grid(reference, name="SEG reference series")
    geometry = Volume(np.zeros((1, 1, 1), np.uint8), grid_affine)
    if labels.shape != shape:
        raise InputError(f"label map shape {labels.shape} differs from the reference series grid "
                         f"{shape} ({reference[0].get('SeriesInstanceUID', '?')})")
    source_uids = sorted({str(ds.SeriesInstanceUID) for ds in [*reference, *other_sources]})
    reference_uid = str(reference[0].SeriesInstanceUID)
    other_series = [uid for uid in source_uids if uid != reference_uid]
    series_uid = series_instance_uid or deterministic_uid(
        "seg", *source_uids, bundle_id, kind, omit_empty_frames, series_number)
    sop_uid = sop_instance_uid or deterministic_uid(series_uid, "instance")
    frames = np.ascontiguousarray(labels.astype(np.uint8).transpose(2, 1, 0))  # (k, j, i)
    affine = geometry.affine
    spacing = geometry.spacing
    positions = [hd.PlanePositionSequence(
        hd.CoordinateSystemNames.PATIENT, (affine @ np.array([0.0, 0.0, k, 1.0]))[:3].tolist())
        for k in range(labels.shape[2])]
    orientation = hd.PlaneOrientationSequence(
        hd.CoordinateSystemNames.PATIENT,
        [*geometry.direction[:, 0].tolist(), *geometry.direction[:, 1].tolist()])
    measures = hd.PixelMeasuresSequence(
        pixel_spacing=[float(spacing[1]), float(spacing[0])], slice_thickness=float(spacing[2]),
        spacing_between_slices=float(spacing[2]))
    seg = hd.seg.Segmentation(
        source_images=list(reference),
        pixel_array=frames,
        segmentation_type=kind,
        segment_descriptions=segment_descriptions(bundle_id, series_uid, other_series),
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer=manufacturer,
        manufacturer_model_name="glioedge",
        software_versions=glioedge_version(),
        device_serial_number=device_serial_number,
        transfer_syntax_uid=ExplicitVRLittleEndian,
        pixel_measures=measures,
        plane_orientation=orientation,
        plane_positions=positions,
        omit_empty_frames=omit_empty_frames,
        series_description=series_description,
        content_label="TUMOUR",
        content_description=f"glioedge {glioedge_version()} bundle {bundle_id}"[:64],
    )
    logger.info("SEG %s: %s, %d frames, series %s", sop_uid, kind,
                int(seg.get("NumberOfFrames", 1)), series_uid)
    return seg

