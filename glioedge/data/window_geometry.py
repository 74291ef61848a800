"""Where the sliding window's patches go, and how they are weighted: nnU-Net v2's window starts,
its Gaussian importance map and its padding of an image smaller than the patch (numpy only;
:mod:`.sliding_window` runs the network over them)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from numpy.typing import DTypeLike
from scipy.ndimage import gaussian_filter1d

from glioedge.errors import ConfigError, InputError
from glioedge.vocabulary import WINDOW_STEP

__all__ = [
    "check_patch_size",
    "check_step_size",
    "compute_window_starts",
    "count_windows",
    "gaussian_importance_map",
    "pad_to_min_shape",
    "shared_importance_map",
    "window_slices",
]


def check_patch_size(patch_size: Sequence[int]) -> tuple[int, ...]:
    """The patch size as a tuple of positive ints (:class:`ConfigError` otherwise)."""
    patch = tuple(int(p) for p in patch_size)
    if not patch or any(p < 1 for p in patch) or any(int(p) != p for p in patch_size):
        raise ConfigError(f"patch_size must be positive integers, got {tuple(patch_size)}")
    return patch


def check_step_size(step_size: float) -> float:
    """The step as a float in (0, 1] (:class:`ConfigError` otherwise)."""
    step = float(step_size)
    if not 0.0 < step <= 1.0:
        raise ConfigError(f"step_size must be in (0, 1], got {step_size}")
    return step


def gaussian_importance_map(
    patch_size: Sequence[int],
    sigma_scale: float = 1.0 / 8,
    dtype: DTypeLike = np.float32,
    value_scaling_factor: float = 1.0,
) -> np.ndarray:
    """Gaussian importance map of a patch, as nnU-Net v2's ``compute_gaussian``.

    A unit impulse at voxel ``patch_size // 2`` is smoothed with ``scipy.ndimage.gaussian_filter``
    (``sigma = patch_size * sigma_scale`` per axis, ``mode='constant'``, ``truncate=4``), divided by
    its maximum and multiplied by ``value_scaling_factor``; after the cast to ``dtype`` any zero is
    replaced by the smallest non-zero value (a zero weight could make the normalisation 0/0).
    The filter is separable, so the map is built as the outer product of the three 1-D filtered
    impulses, which equals ``gaussian_filter`` on the impulse up to float64 rounding and costs
    nothing even for 128³ patches. For even sizes the centre is the upper of the two middle voxels,
    so the map is exactly symmetric about ``patch_size // 2`` (not about the geometric centre).

    Args:
        patch_size: patch shape (any number of spatial axes).
        sigma_scale: sigma as a fraction of the patch size per axis (nnU-Net: 1/8).
        dtype: output dtype.
        value_scaling_factor: maximum of the map (nnU-Net's inference uses 10 for float16
            accumulation; 1 here, the scale cancels out of the weighted average).

    Returns:
        Array of shape ``patch_size``, maximum ``value_scaling_factor`` at ``patch_size // 2``,
        strictly positive.

    Raises:
        ConfigError: ``patch_size`` is not positive integers, or ``sigma_scale`` /
            ``value_scaling_factor`` is not positive and finite.
    """
    patch = check_patch_size(patch_size)
    if not (math.isfinite(sigma_scale) and sigma_scale > 0):
        raise ConfigError(f"sigma_scale must be positive and finite, got {sigma_scale}")
    if not (math.isfinite(value_scaling_factor) and value_scaling_factor > 0):
        raise ConfigError(f"value_scaling_factor must be positive and finite, got {value_scaling_factor}")
    shared = shared_importance_map(patch, float(sigma_scale), np.dtype(dtype).str,
                                   float(value_scaling_factor))
    return shared.copy()


@lru_cache(maxsize=4)
def shared_importance_map(
    patch: tuple[int, ...], sigma_scale: float, dtype: str, value_scaling_factor: float
) -> np.ndarray:
    """The importance map, one read-only instance shared by every caller (no copy per case);
    see :func:`gaussian_importance_map`. The arguments are not validated here."""
    gmap = np.ones((1,) * len(patch), dtype=np.float64)
    for axis, size in enumerate(patch):
        impulse = np.zeros(size, dtype=np.float64)
        impulse[size // 2] = 1.0
        profile = gaussian_filter1d(impulse, size * sigma_scale, mode="constant", cval=0.0)
        shape = [1] * len(patch)
        shape[axis] = size
        gmap = gmap * profile.reshape(shape)
    gmap = gmap / gmap.max() * value_scaling_factor
    out = np.asarray(gmap, dtype=np.dtype(dtype))
    zero = out == 0
    if zero.any():
        out[zero] = out[~zero].min()
    out.flags.writeable = False
    return out


def compute_window_starts(
    image_size: Sequence[int], patch_size: Sequence[int], step_size: float = WINDOW_STEP
) -> list[list[int]]:
    """Window start coordinates per axis, exactly as nnU-Net's ``compute_steps_for_sliding_window``.

    Per axis: ``n = ceil((image - patch) / (patch * step_size)) + 1`` windows, evenly spread from 0
    to ``image - patch`` and rounded with ``np.round`` (round half to even, as nnU-Net). E.g. image
    240, patch 128, step 0.5 → ``[0, 56, 112]``; image 128 → ``[0]``.

    Args:
        image_size: spatial shape of the (already padded) image.
        patch_size: patch shape, same number of axes.
        step_size: target step as a fraction of the patch size, in (0, 1].

    Returns:
        One list of start indices per axis.

    Raises:
        ConfigError: ``patch_size`` or ``step_size`` is invalid.
        InputError: the axes counts differ, or the image is smaller than the patch along an axis
            (nnU-Net's own assertion here is a no-op; pad first, see :func:`pad_to_min_shape`).
    """
    patch = check_patch_size(patch_size)
    step = check_step_size(step_size)
    image = tuple(int(s) for s in image_size)
    if len(image) != len(patch):
        raise InputError(f"image size {image} and patch size {patch} have different axis counts")
    if any(i < p for i, p in zip(image, patch, strict=True)):
        raise InputError(f"image size {image} must be at least the patch size {patch} on every axis")
    starts: list[list[int]] = []
    for size, p in zip(image, patch, strict=True):
        target_step = p * step
        n_steps = int(np.ceil((size - p) / target_step)) + 1
        max_start = size - p
        actual_step = max_start / (n_steps - 1) if n_steps > 1 else 0.0
        starts.append([int(np.round(actual_step * i)) for i in range(n_steps)])
    return starts


def count_windows(
    image_size: Sequence[int], patch_size: Sequence[int], step_size: float = WINDOW_STEP
) -> int:
    """Number of windows (network evaluations without mirroring) for an image.

    An image smaller than the patch counts as padded to it, as :func:`sliding_window_predict` does.

    Raises:
        ConfigError: ``patch_size`` or ``step_size`` is invalid.
        InputError: the axes counts differ.
    """
    patch = check_patch_size(patch_size)
    image = tuple(int(s) for s in image_size)
    if len(image) != len(patch):
        raise InputError(f"image size {image} and patch size {patch} have different axis counts")
    padded = [max(i, p) for i, p in zip(image, patch, strict=True)]
    return math.prod(len(s) for s in compute_window_starts(padded, patch, step_size))


def window_slices(
    image_size: Sequence[int], patch_size: Sequence[int], step_size: float = WINDOW_STEP
) -> list[tuple[slice, ...]]:
    """Spatial slices of every window, in nnU-Net order (last axis fastest).

    Raises:
        ConfigError: ``patch_size`` or ``step_size`` is invalid.
        InputError: see :func:`compute_window_starts`.
    """
    patch = check_patch_size(patch_size)
    starts = compute_window_starts(image_size, patch, step_size)
    return [
        tuple(slice(s, s + p) for s, p in zip(corner, patch, strict=True))
        for corner in itertools.product(*starts)
    ]


def pad_to_min_shape(
    image: np.ndarray, min_spatial_shape: Sequence[int]
) -> tuple[np.ndarray, tuple[slice, ...]]:
    """Zero-pad the trailing axes of ``image`` to at least ``min_spatial_shape``.

    The padding is split as nnU-Net's ``pad_nd_image`` splits it: ``d // 2`` before and the rest
    after, so an odd amount puts the extra voxel after the content. Axes already large enough are
    left alone (never cropped).

    Args:
        image: array ``(..., *spatial)``; the last ``len(min_spatial_shape)`` axes are padded.
        min_spatial_shape: minimum size of those axes.

    Returns:
        ``(padded, slicer)`` with ``padded[slicer]`` equal to ``image`` (``slicer`` covers every
        axis). ``padded`` is ``image`` itself when no padding is needed.

    Raises:
        InputError: ``image`` has fewer axes than ``min_spatial_shape``.
    """
    n = len(min_spatial_shape)
    if image.ndim < n:
        raise InputError(f"image with shape {image.shape} has fewer than {n} axes")
    lead = image.ndim - n
    pads = [(0, 0)] * lead
    for size, target in zip(image.shape[lead:], min_spatial_shape, strict=True):
        diff = max(int(target) - size, 0)
        pads.append((diff // 2, diff - diff // 2))
    slicer = tuple(slice(lo, lo + size) for (lo, _), size in zip(pads, image.shape, strict=True))
    if not any(lo or hi for lo, hi in pads):
        return image, slicer
    return np.pad(image, pads, mode="constant", constant_values=0), slicer
