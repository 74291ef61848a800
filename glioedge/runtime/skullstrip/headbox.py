"""Crop a volume to the head before the brain-mask network: the network's cost grows with the
voxels of its grid, and a 240 mm field of view around a ~170 mm wide head is mostly air.

The head is what is clearly brighter than the background noise (a fraction of a high percentile,
opened once to drop isolated noise voxels), found on a stride-2 copy (cheap on 1 mm volumes); its
bounding box grows by a margin in millimetres and the volume is cut to it (a view, no copy; the
affine moves with the crop). Nothing inside the skull is ever outside the box: the scalp around it
is bright on every sequence. When the box would keep almost the whole field of view the volume is
returned unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from glioedge.dicom_io import Volume

__all__ = ["HeadBox", "head_box"]


@dataclass(frozen=True)
class HeadBox:
    """The crop: ``slices`` of the input array of shape ``full_shape``, and the cropped ``volume``."""

    slices: tuple[slice, ...]
    volume: Volume
    full_shape: tuple[int, ...]

    @property
    def fraction(self) -> float:
        """Voxels kept / voxels of the input."""
        kept = np.prod([s.stop - s.start for s in self.slices])
        return float(kept) / float(np.prod(self.full_shape))


def head_box(volume: Volume, margin_mm: float = 10.0, level: float = 0.1, percentile: float = 99.0,
             min_saving: float = 0.05) -> HeadBox:
    """The bounding box of the head in ``volume``, grown by ``margin_mm``.

    Args:
        volume: the raw series (with skull, air and noise).
        margin_mm: growth of the box on every side.
        level: head = voxels above ``level`` × the ``percentile``-th percentile of the image.
        percentile: the bright reference (fat, scalp, brain).
        min_saving: crop only when it removes at least this fraction of the voxels.
    """
    array = np.asarray(volume.array)
    full = tuple(slice(0, n) for n in array.shape)
    step = tuple(2 if n >= 32 else 1 for n in array.shape)
    small = array[:: step[0], :: step[1], :: step[2]]
    high = float(np.percentile(small, percentile))
    if not np.isfinite(high) or high <= 0:
        return HeadBox(full, volume, volume.shape)
    head = ndimage.binary_opening(small > level * high)
    if not head.any():
        return HeadBox(full, volume, volume.shape)
    spacing = np.asarray(volume.spacing, dtype=np.float64)
    slices = []
    for axis, (n, st) in enumerate(zip(array.shape, step, strict=True)):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(head.any(axis=other))
        grow = int(np.ceil(margin_mm / spacing[axis])) + st
        slices.append(slice(max(0, int(idx[0]) * st - grow), min(n, int(idx[-1]) * st + grow + 1)))
    box = tuple(slices)
    kept = float(np.prod([s.stop - s.start for s in box])) / float(array.size)
    if kept > 1.0 - min_saving:
        return HeadBox(full, volume, volume.shape)
    affine = volume.affine.copy()
    affine[:3, 3] = (volume.affine @ np.array([box[0].start, box[1].start, box[2].start, 1.0]))[:3]
    cropped = replace(volume, array=array[box], affine=affine)
    return HeadBox(box, cropped, volume.shape)
