"""Put a prediction and its reference on one voxel grid, in physical space.

The grid is the reference's (its origin, axes and spacing), grown where needed to cover the
prediction: a SEG stores only the frames holding a segment, so two SEGs of the same series can
span different slices, and a prediction may reach beyond a reference drawn on fewer slices.
Both are then resampled onto it by nearest neighbour through their geometry (SimpleITK): never
by array index. On identical grids nothing is resampled.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from glioedge.dicom_io.fusion import resample_to
from glioedge.dicom_io.volume import Volume
from glioedge.errors import InputError

__all__ = ["MAX_GROWTH", "common_grid"]

#: The grown grid may hold at most this many times the reference's voxels (a larger one means the
#: two do not lie in the same space: another patient position or frame of reference).
MAX_GROWTH = 8.0


def _corners(volume: Volume) -> np.ndarray:
    ni, nj, nk = volume.shape
    idx = np.array([[i, j, k, 1.0] for i, j, k in itertools.product((0, ni - 1), (0, nj - 1), (0, nk - 1))])
    return (volume.affine @ idx.T).T[:, :3]


def common_grid(pred: Volume, truth: Volume, case: str) -> tuple[Volume, Volume]:
    """``(pred, truth)`` on the reference grid grown to cover the prediction.

    Raises:
        InputError: the two carry different Frames of Reference, or the prediction lies so far
            from the reference that the grid would grow more than :data:`MAX_GROWTH` times.
    """
    for_p, for_t = pred.frame_of_reference_uid, truth.frame_of_reference_uid
    if for_p and for_t and for_p != for_t:
        raise InputError(f"{case}: prediction and reference lie in different Frames of Reference "
                         f"({for_p} vs {for_t}); they cannot be compared without a registration")
    if pred.same_grid(truth):
        return pred, truth
    inverse = np.linalg.inv(truth.affine)
    idx = (inverse @ np.c_[_corners(pred), np.ones(8)].T).T[:, :3]
    lo = np.minimum(np.floor(idx.min(axis=0) + 1e-3), 0).astype(int)
    hi = np.maximum(np.ceil(idx.max(axis=0) - 1e-3), np.array(truth.shape) - 1).astype(int)
    shape = tuple(int(x) for x in hi - lo + 1)
    if np.prod(shape) > MAX_GROWTH * np.prod(truth.shape):
        raise InputError(f"{case}: the prediction lies far outside the reference (a common grid of "
                         f"{shape} voxels for a reference of {truth.shape}); are they of the same "
                         f"patient position and series?")
    affine = truth.affine.copy()
    affine[:3, 3] = (truth.affine @ np.array([*lo, 1.0]))[:3]
    grid = dataclasses.replace(truth, array=np.zeros(shape, dtype=np.uint8), affine=affine)
    return (resample_to(pred, grid, interpolator="nearest"),
            resample_to(truth, grid, interpolator="nearest"))
