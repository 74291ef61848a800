"""The brain mask as a DICOM-SEG of its own: one BINARY segment "Brain" (SCT 12738006), on the
reference series' grid, referencing only that series.

A separate object from the tumour SEG (whose segments are the model's classes): a viewer shows it
as its own layer, and a site that does not want it never receives it. It reuses the tumour SEG
writer's grid check (:func:`glioedge.dicom_io.series.series_grid`) and conventions (uncompressed
Explicit VR Little Endian, glioedge as the algorithm, deterministic UIDs from the caller).
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian

from glioedge.dicom_io.seg_write import BRAIN, glioedge_version
from glioedge.dicom_io.series import series_grid
from glioedge.dicom_io.uids import deterministic_uid
from glioedge.dicom_io.volume import Volume
from glioedge.errors import InputError
from glioedge.vocabulary import BRAIN_SEG_CATEGORY, BRAIN_SEGMENT

__all__ = ["write_brain_seg"]


def write_brain_seg(
    mask: np.ndarray, reference: Sequence[Dataset], *, series_instance_uid: str,
    sop_instance_uid: str, bundle_id: str = "unknown", series_number: int = 9902,
    series_description: str = "glioedge brain mask", parameters: dict[str, str] | None = None,
) -> Dataset:
    """Encode a boolean ``mask`` (``(i, j, k)`` on the reference series' grid) as a BINARY SEG.

    Args:
        mask: the brain, indexed as :func:`glioedge.dicom_io.load_series` indexes ``reference``.
        reference: all datasets of the series the mask lies on (the only series referenced).
        series_instance_uid, sop_instance_uid: the SEG's UIDs (the caller derives them).
        bundle_id: the model bundle (algorithm parameters).
        series_number, series_description: of the SEG series.
        parameters: further algorithm parameters (e.g. the brain-mask model and margin).

    Raises:
        InputError: no reference, an empty mask, or a mask not on the reference grid.
    """
    if not reference:
        raise InputError("write_brain_seg: no reference datasets given")
    mask = np.asarray(mask).astype(bool)
    shape, grid_affine = series_grid(reference, name="brain SEG reference series")
    if mask.shape != shape:
        raise InputError(f"brain mask shape {mask.shape} differs from the reference series grid {shape} "
                         f"({reference[0].get('SeriesInstanceUID', '?')})")
    if not mask.any():
        raise InputError("write_brain_seg: the brain mask is empty")
    geometry = Volume(np.zeros((1, 1, 1), np.uint8), grid_affine)
    affine, spacing = geometry.affine, geometry.spacing
    algorithm = hd.AlgorithmIdentificationSequence(
        name="glioedge", family=codes.cid7162.ArtificialIntelligence, version=glioedge_version(),
        parameters={"model_bundle": bundle_id, **(parameters or {})},
    )
    segment = hd.seg.SegmentDescription(
        segment_number=1, segment_label=BRAIN_SEGMENT.label,
        segmented_property_category=hd.sr.CodedConcept(*BRAIN_SEG_CATEGORY),
        segmented_property_type=hd.sr.CodedConcept(*BRAIN_SEGMENT.property_type),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
        tracking_uid=deterministic_uid(series_instance_uid, bundle_id, "tracking", "brain"),
        tracking_id=f"glioedge {BRAIN_SEGMENT.tracking}", anatomic_regions=[BRAIN],
        display_color=hd.color.CIELabColor.from_rgb(*BRAIN_SEGMENT.rgb),
    )
    positions = [hd.PlanePositionSequence(
        hd.CoordinateSystemNames.PATIENT, (affine @ np.array([0.0, 0.0, k, 1.0]))[:3].tolist())
        for k in range(shape[2])]
    return hd.seg.Segmentation(
        source_images=list(reference),
        pixel_array=np.ascontiguousarray(mask.astype(np.uint8).transpose(2, 1, 0)),
        segmentation_type="BINARY",
        segment_descriptions=[segment],
        series_instance_uid=series_instance_uid, series_number=series_number,
        sop_instance_uid=sop_instance_uid, instance_number=1,
        manufacturer="glioedge", manufacturer_model_name="glioedge",
        software_versions=glioedge_version(), device_serial_number="0",
        transfer_syntax_uid=ExplicitVRLittleEndian,
        pixel_measures=hd.PixelMeasuresSequence(
            pixel_spacing=[float(spacing[1]), float(spacing[0])], slice_thickness=float(spacing[2]),
            spacing_between_slices=float(spacing[2])),
        plane_orientation=hd.PlaneOrientationSequence(
            hd.CoordinateSystemNames.PATIENT,
            [*geometry.direction[:, 0].tolist(), *geometry.direction[:, 1].tolist()]),
        plane_positions=positions, omit_empty_frames=True,
        series_description=series_description, content_label="BRAIN",
        content_description=f"glioedge {glioedge_version()} brain mask"[:64],
    )
