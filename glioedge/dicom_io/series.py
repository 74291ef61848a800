"""One MR series (MR Image Storage or Enhanced MR Image Storage) → a :class:`Volume`.

Every frame, from single-frame instances or from multi-frame instances, becomes a
:class:`_Frame` (position, orientation, spacing, rescale, pixel getter); the geometry checks are
then the same for both storage classes, and run on headers alone. Pixel data is decoded only
after they pass, one instance at a time, from memory or, for headers read without it, from the
instance's file (:func:`glioedge.dicom_io.headers.instance_pixels`). Compressed transfer syntaxes
decode through pydicom's pixel-data plugins (pylibjpeg, pyjpegls). Second copies of an instance
(:attr:`Series.duplicates`) must hold the same pixel data as the copy used.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence

import numpy as np
from pydicom.dataset import Dataset

from glioedge.dicom_io.discovery import ENHANCED_MR_IMAGE_STORAGE, Series, dataset_source
from glioedge.dicom_io.headers import instance_pixels
from glioedge.dicom_io.volume import Volume
from glioedge.errors import InputError

logger = logging.getLogger(__name__)

#: Tolerances, in mm (positions) and unit-vector components (orientations).
POSITION_TOL_MM = 0.01
ORIENTATION_TOL = 1e-4
SPACING_RTOL = 0.01


@dataclasses.dataclass
class _Frame:
    position: np.ndarray
    orientation: np.ndarray  # 6 values: row direction, column direction
    pixel_spacing: tuple[float, float]  # (between rows, between columns)
    shape: tuple[int, int]  # (rows, columns)
    slope: float
    intercept: float
    frame_of_reference: str
    sop_instance_uid: str
    source: str
    pixels: Callable[[], np.ndarray]  # (rows, columns), stored values


def load_series(series: Series | Sequence[Dataset], name: str | None = None) -> Volume:
    """Turn the instances of one series into a volume, after checking its geometry.

    Args:
        series: A :class:`Series` from discovery, or the datasets of one series.
        name: How to call the series in messages (default: its number, description and UID).

    Returns:
        A float32 volume with rescale slope/intercept applied, slices ordered along the normal.

    Raises:
        InputError: the series is empty, mixes orientations, image sizes, pixel spacings or frames
            of reference, has duplicated or missing slices, uneven spacing, slices off the normal,
            or pixel data that cannot be decoded. The message names the series.
    """
    series = _as_series(series, name)
    name = name or series.label()
    frames, affine = _sorted_frames(series, name)
    # Fill slice by slice into a (k, j, i) C-ordered stack (contiguous writes), and hand out its
    # (i, j, k) transpose: a Fortran-ordered view, which SimpleITK takes without another copy.
    stack = np.empty((len(frames), frames[0].shape[0], frames[0].shape[1]), dtype=np.float32)
    for k, frame in enumerate(frames):
        try:
            stored = frame.pixels()
        except InputError as exc:
            raise InputError(f"{name}: {exc}") from exc
        if stored.shape != frame.shape:
            raise InputError(f"{name}: {frame.source} has pixel data of shape {stored.shape}, "
                             f"expected Rows×Columns {frame.shape}")
        values = stored.astype(np.float32)
        if frame.slope != 1.0 or frame.intercept != 0.0:
            values = values * np.float32(frame.slope) + np.float32(frame.intercept)
        stack[k] = values
    _compare_duplicates(series, name)
    array = stack.transpose(2, 1, 0)
    header = series.header
    first = frames[0]
    sop_uids = list(dict.fromkeys(f.sop_instance_uid for f in frames))
    logger.debug("%s: %d frames, spacing %s mm", name, len(frames),
                 np.round(np.linalg.norm(affine[:3, :3], axis=0), 3).tolist())
    return Volume(
        array=array,
        affine=affine,
        study_instance_uid=series.study_instance_uid,
        series_instance_uid=series.series_instance_uid,
        sop_instance_uids=tuple(sop_uids),
        frame_of_reference_uid=first.frame_of_reference,
        description=str(header.get("SeriesDescription", "")),
    )


def _compare_duplicates(series: Series, name: str) -> None:
    """Second copies of an instance must hold the same pixel data as the copy used."""
    for duplicate in series.duplicates:
        kept = series.datasets[series.sources.index(duplicate.kept)]
        try:
            same = np.array_equal(instance_pixels(kept, duplicate.kept),
                                  instance_pixels(duplicate.dataset, duplicate.dropped))
        except InputError as exc:
            raise InputError(f"{name}: {exc}") from exc
        if not same:
            raise InputError(
                f"{name}: SOPInstanceUID {duplicate.sop_instance_uid} is in two files with "
                f"different pixel data: {duplicate.kept} and {duplicate.dropped}; expected a "
                "resent copy to be identical (remove the wrong one)")
        duplicate.pixels = "identical"


def _as_series(series: Series | Sequence[Dataset], name: str | None) -> Series:
    if isinstance(series, Series):
        if not series.datasets:
            raise InputError(f"{name or series.label()}: no instance")
        return series
    datasets = list(series)
    if not datasets:
        raise InputError(f"{name or 'series'}: no instance given")
    return Series(str(datasets[0].get("StudyInstanceUID", "")),
                  str(datasets[0].get("SeriesInstanceUID", "")), datasets,
                  [dataset_source(ds, n) for n, ds in enumerate(datasets)])


def _sorted_frames(series: Series, name: str) -> tuple[list[_Frame], np.ndarray]:
    frames: list[_Frame] = []
    for ds, source in zip(series.datasets, series.sources, strict=True):
        frames.extend(_frames_of(ds, source, name))
    frames = _check_and_sort(frames, name)
    first, last = frames[0], frames[-1]
    row_dir, col_dir = first.orientation[:3], first.orientation[3:]
    affine = np.eye(4)
    affine[:3, 0] = row_dir * first.pixel_spacing[1]
    affine[:3, 1] = col_dir * first.pixel_spacing[0]
    affine[:3, 2] = (last.position - first.position) / (len(frames) - 1)
    affine[:3, 3] = first.position
    return frames, affine


def series_grid(series: Series | Sequence[Dataset], name: str | None = None
                ) -> tuple[tuple[int, int, int], np.ndarray]:
    """The grid (shape ``(i, j, k)`` and LPS affine) :func:`load_series` gives, from headers only.

    Raises:
        InputError: as :func:`load_series`, for the geometry checks.
    """
    series = _as_series(series, name)
    frames, affine = _sorted_frames(series, name or series.label())
    return (frames[0].shape[1], frames[0].shape[0], len(frames)), affine


def _floats(value: object, n: int, what: str, source: str, name: str) -> np.ndarray:
    try:
        out = np.asarray([float(v) for v in value], dtype=np.float64)  # type: ignore[union-attr]
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: {source} has no valid {what}") from exc
    if out.shape != (n,):
        raise InputError(f"{name}: {source} has {what} with {out.size} values, expected {n}")
    return out


def _rescale(item: Dataset | None) -> tuple[float, float]:
    if item is None:
        return 1.0, 0.0
    slope = item.get("RescaleSlope", 1.0)
    intercept = item.get("RescaleIntercept", 0.0)
    return float(slope if slope not in (None, "") else 1.0), float(intercept or 0.0)


def _frames_of(ds: Dataset, source: str, name: str) -> list[_Frame]:
    for keyword in ("Rows", "Columns"):
        if keyword not in ds:
            raise InputError(f"{name}: {source} lacks {keyword}")
    shape = (int(ds.Rows), int(ds.Columns))
    for_uid = str(ds.get("FrameOfReferenceUID", ""))
    sop_uid = str(ds.get("SOPInstanceUID", ""))
    if str(ds.get("SOPClassUID", "")) != ENHANCED_MR_IMAGE_STORAGE:
        for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
            if keyword not in ds:
                raise InputError(f"{name}: {source} lacks {keyword}, which a 3-D volume needs")
        spacing = _floats(ds.PixelSpacing, 2, "PixelSpacing", source, name)
        return [_Frame(
            position=_floats(ds.ImagePositionPatient, 3, "ImagePositionPatient", source, name),
            orientation=_floats(ds.ImageOrientationPatient, 6, "ImageOrientationPatient",
                                source, name),
            pixel_spacing=(float(spacing[0]), float(spacing[1])), shape=shape,
            slope=_rescale(ds)[0], intercept=_rescale(ds)[1], frame_of_reference=for_uid,
            sop_instance_uid=sop_uid, source=source, pixels=lambda: instance_pixels(ds, source),
        )]
    n_frames = int(ds.get("NumberOfFrames", 1))
    shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds \
        else Dataset()
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    if len(per_frame) != n_frames:
        raise InputError(f"{name}: {source} has {len(per_frame)} per-frame functional groups "
                         f"for {n_frames} frames")

    def group(index: int, keyword: str, required: bool = True) -> Dataset | None:
        for container in (per_frame[index], shared):
            if keyword in container and len(container[keyword].value):
                return container[keyword].value[0]
        if required:
            raise InputError(f"{name}: {source} frame {index + 1} lacks {keyword}")
        return None

    decoded: list[np.ndarray] = []  # the instance, decoded once when its first frame is needed

    def frame_pixels(index: int) -> np.ndarray:
        if not decoded:
            decoded.append(instance_pixels(ds, source))
        return decoded[0] if n_frames == 1 else decoded[0][index]

    frames = []
    for index in range(n_frames):
        spacing = _floats(group(index, "PixelMeasuresSequence").PixelSpacing, 2,
                          "PixelSpacing", source, name)
        slope, intercept = _rescale(group(index, "PixelValueTransformationSequence", False))
        frames.append(_Frame(
            position=_floats(group(index, "PlanePositionSequence").ImagePositionPatient, 3,
                             "ImagePositionPatient", f"{source} frame {index + 1}", name),
            orientation=_floats(group(index, "PlaneOrientationSequence").ImageOrientationPatient,
                                6, "ImageOrientationPatient", f"{source} frame {index + 1}", name),
            pixel_spacing=(float(spacing[0]), float(spacing[1])), shape=shape, slope=slope,
            intercept=intercept, frame_of_reference=for_uid, sop_instance_uid=sop_uid,
            source=f"{source} frame {index + 1}",
            pixels=lambda index=index: frame_pixels(index),
        ))
    return frames


def _check_and_sort(frames: list[_Frame], name: str) -> list[_Frame]:
    if len(frames) < 2:
        raise InputError(f"{name}: {len(frames)} slice(s); a volume needs at least 2")
    first = frames[0]
    shapes = sorted({f.shape for f in frames})
    if len(shapes) > 1:
        raise InputError(f"{name}: image size (Rows, Columns) varies within the series: {shapes}")
    orientations = [f.orientation for f in frames]
    distinct = [orientations[0]]
    for o in orientations[1:]:
        if not any(np.allclose(o, d, atol=ORIENTATION_TOL) for d in distinct):
            distinct.append(o)
    if len(distinct) > 1:
        listing = ", ".join(str(np.round(d, 3).tolist()) for d in distinct)
        raise InputError(f"{name}: mixed orientations within the series "
                         f"({len(distinct)} different ImageOrientationPatient: {listing})")
    spacings = sorted({f.pixel_spacing for f in frames})
    if len(spacings) > 1 and not np.allclose(spacings[0], spacings[-1], rtol=1e-4):
        raise InputError(f"{name}: PixelSpacing varies within the series: {spacings}")
    references = sorted({f.frame_of_reference for f in frames})
    if len(references) > 1:
        raise InputError(f"{name}: {len(references)} frames of reference in one series: "
                         f"{references}")
    row_dir, col_dir = first.orientation[:3], first.orientation[3:]
    if abs(np.dot(row_dir, col_dir)) > 1e-3 or not np.allclose(
            [np.linalg.norm(row_dir), np.linalg.norm(col_dir)], 1.0, atol=1e-3):
        raise InputError(f"{name}: ImageOrientationPatient {first.orientation.tolist()} is not "
                         "two orthogonal unit vectors")
    normal = np.cross(row_dir, col_dir)
    along = np.array([f.position @ normal for f in frames])
    order = np.argsort(along, kind="stable")
    frames = [frames[i] for i in order]
    along = along[order]
    steps = np.diff(along)
    duplicated = np.flatnonzero(steps < POSITION_TOL_MM)
    if duplicated.size:
        i = int(duplicated[0])
        raise InputError(
            f"{name}: duplicated slice: {frames[i].source} and {frames[i + 1].source} are both at "
            f"{along[i]:.2f} mm along the normal ({duplicated.size} duplicate(s) in all)")
    in_plane = np.array([f.position - (f.position @ normal) * normal for f in frames])
    drift = np.linalg.norm(in_plane - in_plane[0], axis=1).max()
    if drift > max(10 * POSITION_TOL_MM, 0.01 * float(np.min(first.pixel_spacing))):
        raise InputError(f"{name}: slices are not stacked along the slice normal (in-plane offset "
                         f"up to {drift:.2f} mm; gantry tilt or shifted slices are not supported)")
    step = float(np.median(steps))
    uneven = np.flatnonzero(np.abs(steps - step) > SPACING_RTOL * step + POSITION_TOL_MM)
    if uneven.size:
        i = int(uneven[0])
        ratio = steps[i] / step
        if abs(ratio - round(ratio)) < 0.05 and round(ratio) >= 2:
            raise InputError(
                f"{name}: slice missing: spacing is {step:.2f} mm but {steps[i]:.2f} mm between "
                f"slices {i} and {i + 1} (positions {along[i]:.2f} and {along[i + 1]:.2f} mm along "
                f"the normal); {round(ratio) - 1} slice(s) missing there"
                + (f", {uneven.size} gap(s) in all" if uneven.size > 1 else ""))
        raise InputError(f"{name}: slice spacing varies ({steps.min():.2f}–{steps.max():.2f} mm, "
                         f"first irregular step between slices {i} and {i + 1})")
    return frames
