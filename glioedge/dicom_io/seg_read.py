"""Read a DICOM Segmentation back into a label-map :class:`Volume` (classes 0..3)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset

from glioedge.dicom_io.fusion import resample_to
from glioedge.dicom_io.volume import Volume
from glioedge.errors import InputError
from glioedge.vocabulary import SEGMENTS

_CLASS_BY_CODE = {(spec.property_type.scheme, spec.property_type.value): number
                  for number, spec in SEGMENTS.items()}
_CLASS_BY_LABEL = {spec.label.upper(): number for number, spec in SEGMENTS.items()}


def read_seg(source: str | Path | Dataset, reference: Volume | None = None, *,
             segment_classes: Mapping[str, int] | None = None) -> Volume:
    """Decode a SEG into internal classes (0 bg, 1 NCR, 2 ED, 3 ET).

    Segments are recognised by ``segment_classes`` first (a site's own names or codes), then by
    their segmented property type (the codes glioedge writes), then by their label (``NCR``,
    ``ED``, ``ET``).

    Args:
        source: A SEG file or dataset.
        reference: If given, the result is placed on this grid (nearest neighbour in physical
            space, exact when the SEG was written on it); otherwise the grid spans the SEG's
            frames only (omitted empty frames at the ends are not known).
        segment_classes: Segment label (any case) or ``"SCHEME:VALUE"`` of its segmented
            property type → internal class; class 0 drops the segment.

    Returns:
        A uint8 label-map volume carrying the SEG's study, series, instance and frame of reference.

    Raises:
        InputError: not a readable SEG, a segment glioedge cannot map, or frames that do not form
            a regular volume.
    """
    try:
        ds = source if isinstance(source, Dataset) else pydicom.dcmread(source)
        seg = hd.seg.Segmentation.from_dataset(ds, copy=False)
    except (OSError, ValueError, AttributeError, KeyError, TypeError) as exc:
        raise InputError(f"{source if not isinstance(source, Dataset) else 'dataset'} is not a "
                         f"readable DICOM Segmentation: {exc}") from exc
    lut = np.zeros(max(seg.segment_numbers, default=0) + 1, dtype=np.uint8)
    local = {key.upper(): value for key, value in (segment_classes or {}).items()}
    for number in seg.segment_numbers:
        description = seg.get_segment_description(number)
        prop = description.segmented_property_type
        label = str(description.segment_label).upper()
        cls = local.get(label, local.get(f"{prop.scheme_designator}:{prop.value}".upper()))
        if cls is None:
            cls = _CLASS_BY_CODE.get((prop.scheme_designator, prop.value), _CLASS_BY_LABEL.get(label))
        if cls is None:
            hint = " nor in the segment mapping" if segment_classes else ""
            raise InputError(f"SEG {ds.SOPInstanceUID}: segment {number} ({label!r}, "
                             f"{prop.scheme_designator}:{prop.value} {prop.meaning}) is not NCR, ED "
                             f"or ET{hint}")
        lut[number] = cls
    try:
        volume = seg.get_volume(combine_segments=True, relabel=False, dtype=np.uint16)
    except (ValueError, RuntimeError) as exc:
        raise InputError(f"SEG {ds.SOPInstanceUID}: frames do not form a regular volume: "
                         f"{exc}") from exc
    array = lut[np.asarray(volume.array).transpose(2, 1, 0)]
    out = Volume(
        array=array, affine=np.asarray(volume.affine)[:, [2, 1, 0, 3]],
        study_instance_uid=str(ds.StudyInstanceUID),
        series_instance_uid=str(ds.SeriesInstanceUID),
        sop_instance_uids=(str(ds.SOPInstanceUID),),
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "")),
        description=str(ds.get("SeriesDescription", "")),
    )
    if reference is None:
        return out
    return resample_to(out, reference, interpolator="nearest")
