"""nnU-Net-style sliding-window inference, numpy only.

Shared by the trainer's validation and by the torch-free runtime, so this module must never import
torch: the network is reached through a plain callable ``predict_fn`` that maps a batch of patches
``(B, C, *patch)`` to per-class outputs ``(B, K, *patch)`` (a torch model, an onnxruntime session
or a TensorRT engine wrapped by the caller).

Behaviour follows nnU-Net v2 (``nnunetv2/inference/sliding_window_prediction.py`` and
``nnUNetPredictor.predict_sliding_window_return_logits``):

- an image smaller than the patch along an axis is zero-padded to the patch size, the padding
  split as ``acvl_utils.pad_nd_image`` does (``below = d // 2``, ``above = d - below``), and the
  result is cropped back;
- window starts per axis are :func:`compute_window_starts` (``compute_steps_for_sliding_window``);
- each window's output is multiplied by a Gaussian importance map (:func:`gaussian_importance_map`,
  ``compute_gaussian``) and the weighted sum is divided per voxel by the summed weights;
- test-time mirroring averages the plain prediction and the predictions for every non-empty
  combination of ``mirror_axes`` (input flipped, output flipped back); on request the window also
  blends how much the mirrored predictions disagree (:func:`mirror_disagreement`), a per-voxel
  uncertainty the quality verdict reads (nnU-Net has no such output).

Differences from nnU-Net: accumulation is float32 (nnU-Net uses float16 on the GPU, hence its
``value_scaling_factor=10``) or float64 on request, so the importance map here is scaled to a
maximum of 1 by default; the scale cancels in the normalisation.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, overload

import numpy as np
from numpy.typing import DTypeLike

from glioedge.data.window_geometry import (
    check_patch_size,
    check_step_size,
    compute_window_starts,
    count_windows,
    gaussian_importance_map,
    pad_to_min_shape,
    shared_importance_map,
    window_slices,
)
from glioedge.errors import BackendError, ConfigError, InputError
from glioedge.vocabulary import WINDOW_STEP

__all__ = [
    "PredictFn",
    "WindowPlan",
    "compute_window_starts",
    "count_windows",
    "gaussian_importance_map",
    "mirror_disagreement",
    "pad_to_min_shape",
    "plan_windows",
    "sliding_window_predict",
    "window_slices",
]

#: A batch of patches ``(B, C, *patch)`` float32 → outputs ``(B, K, *patch)``.
PredictFn = Callable[[np.ndarray], np.ndarray]


def _mirror_combinations(mirror_axes: Sequence[int], n_spatial: int) -> list[tuple[int, ...]]:
    axes = tuple(int(a) for a in mirror_axes)
    if any(a < 0 or a >= n_spatial for a in axes) or len(set(axes)) != len(axes):
        raise ConfigError(
            f"mirror_axes must be distinct spatial axes in 0..{n_spatial - 1}, got {tuple(mirror_axes)}"
        )
    # Spatial axis a is array axis a + 2 of a (B, C, *spatial) batch.
    return [
        tuple(a + 2 for a in combo) for r in range(len(axes) + 1) for combo in itertools.combinations(axes, r)
    ]


def mirror_disagreement(flip_labels: np.ndarray, mean_labels: np.ndarray) -> np.ndarray:
    """Per voxel, the share of the mirrored predictions whose label differs from their average's.

    The measure of disagreement between mirrored predictions that the sliding window blends: each
    flip's argmax against the argmax of the flips' average. Chosen over a distance between the
    flips' softmaxes because it needs no softmax per flip (the window averages whatever the
    back-end returns: logits, and a distance between logits means nothing), keeps one byte per flip
    and voxel instead of ``K`` floats, and reads directly: 0 where every mirrored view gives the
    voxel the same label, 0.5 where half of them would label it differently. It is coarse on one
    voxel (multiples of ``1/flips``), continuous once blended across windows and averaged over a
    region.

    Args:
        flip_labels: ``(F, *shape)`` argmax of each flip's prediction (flipped back).
        mean_labels: ``(*shape)`` argmax of their average.

    Returns:
        ``(*shape)`` float32 in ``[0, 1]`` (1 is possible: flips split between two labels can
        average to a third).
    """
    return (flip_labels != mean_labels[None]).mean(axis=0, dtype=np.float32)


def _label_dtype(num_classes: int) -> np.dtype:
    return np.dtype(np.uint8 if num_classes <= 256 else np.int32)


def _predict_batch(
    predict_fn: PredictFn,
    batch: np.ndarray,
    flips: list[tuple[int, ...]],
    expected_shape: tuple[int, ...],
    accumulate_dtype: np.dtype,
    disagreement: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Mirror-averaged prediction of one batch, in ``accumulate_dtype``, and (``disagreement``)
    the batch's :func:`mirror_disagreement` ``(B, *patch)``."""
    total: np.ndarray | None = None
    labels = (np.empty((len(flips), expected_shape[0], *expected_shape[2:]), _label_dtype(expected_shape[1]))
              if disagreement else None)
    for i, axes in enumerate(flips):
        x = np.ascontiguousarray(np.flip(batch, axes)) if axes else batch
        y = np.asarray(predict_fn(x))
        if y.shape != expected_shape:
            raise BackendError(
                f"predict_fn returned shape {y.shape} for a batch of shape {x.shape}; "
                f"expected {expected_shape} (batch, num_classes, *patch)"
            )
        if axes:
            y = np.flip(y, axes)
        if labels is not None:
            labels[i] = y.argmax(axis=1)
        if total is None:
            total = y.astype(accumulate_dtype, copy=True)
        else:
            total += y
    assert total is not None  # flips always holds the identity
    if len(flips) > 1:
        total /= len(flips)
    share = mirror_disagreement(labels, total.argmax(axis=1)) if labels is not None else None
    return total, share


@dataclass(frozen=True)
class WindowPlan:
    """What every sliding-window blender shares (this module's and the torch back-end's): the
    checked arguments, the image padded to at least the patch, the windows, the mirror flips and
    the weight map. Built by :func:`plan_windows`.

    Attributes:
        patch: the patch shape.
        image: the ``(C, *spatial)`` float32 image, zero-padded to at least ``patch``.
        revert: slices that crop a ``(K, *spatial)`` result of ``image`` back to the input's shape.
        slices: the spatial slices of every window, in nnU-Net order.
        flips: the axes of a ``(B, C, *patch)`` batch to flip per mirror combination (``()`` first).
        weight: the read-only importance map (Gaussian, or ones) in the accumulation dtype.
        num_classes: ``K``.
        batch_size: windows per network call.
    """

    patch: tuple[int, ...]
    image: np.ndarray
    revert: tuple[slice, ...]
    slices: list[tuple[slice, ...]]
    flips: list[tuple[int, ...]]
    weight: np.ndarray
    num_classes: int
    batch_size: int

    def batches(self) -> Iterator[tuple[int, list[tuple[slice, ...]]]]:
        """``(index of the first window, its windows)`` per network call."""
        for first in range(0, len(self.slices), self.batch_size):
            yield first, self.slices[first : first + self.batch_size]


def plan_windows(
    image: np.ndarray,
    patch_size: Sequence[int],
    *,
    num_classes: int,
    step_size: float = WINDOW_STEP,
    batch_size: int = 2,
    use_gaussian: bool = True,
    mirror_axes: tuple[int, ...] = (),
    accumulate_dtype: DTypeLike = np.float32,
    return_disagreement: bool = False,
) -> WindowPlan:
    """Check a sliding window's arguments and lay out its windows (see :func:`sliding_window_predict`).

    Raises:
        InputError: ``image`` has the wrong number of axes or is empty.
        ConfigError: ``patch_size``, ``step_size``, ``batch_size``, ``num_classes``,
            ``mirror_axes`` or ``accumulate_dtype`` is invalid, or ``return_disagreement``
            is asked for without ``mirror_axes``.
    """
    patch = check_patch_size(patch_size)
    step = check_step_size(step_size)
    n_spatial = len(patch)
    image = np.asarray(image)
    if image.ndim != n_spatial + 1:
        raise InputError(
            f"image must be (C, *spatial) with {n_spatial} spatial axes to match patch size "
            f"{patch}, got shape {image.shape}"
        )
    if image.size == 0:
        raise InputError(f"image is empty (shape {image.shape})")
    if int(batch_size) < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    if int(num_classes) < 1:
        raise ConfigError(f"num_classes must be at least 1, got {num_classes}")
    acc_dtype = np.dtype(accumulate_dtype)
    if acc_dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ConfigError(f"accumulate_dtype must be float32 or float64, got {acc_dtype}")
    flips = _mirror_combinations(mirror_axes, n_spatial)
    if return_disagreement and len(flips) < 2:
        raise ConfigError("return_disagreement needs mirroring (mirror_axes): the disagreement is "
                          "between mirrored predictions")
    data, revert = pad_to_min_shape(np.asarray(image, dtype=np.float32), patch)
    if use_gaussian:
        weight = shared_importance_map(patch, 1.0 / 8, acc_dtype.str, 1.0)
    else:
        weight = np.ones(patch, dtype=acc_dtype)
        weight.flags.writeable = False
    return WindowPlan(patch=patch, image=data, revert=revert,
                      slices=window_slices(data.shape[1:], patch, step), flips=flips, weight=weight,
                      num_classes=int(num_classes), batch_size=int(batch_size))


@overload
def sliding_window_predict(
    image: np.ndarray, predict_fn: PredictFn, patch_size: Sequence[int], *, num_classes: int,
    step_size: float = ..., batch_size: int = ..., use_gaussian: bool = ...,
    mirror_axes: tuple[int, ...] = ..., accumulate_dtype: DTypeLike = ...,
    on_progress: Callable[[int, int], None] | None = ..., return_disagreement: Literal[False] = ...,
) -> np.ndarray: ...


@overload
def sliding_window_predict(
    image: np.ndarray, predict_fn: PredictFn, patch_size: Sequence[int], *, num_classes: int,
    step_size: float = ..., batch_size: int = ..., use_gaussian: bool = ...,
    mirror_axes: tuple[int, ...] = ..., accumulate_dtype: DTypeLike = ...,
    on_progress: Callable[[int, int], None] | None = ..., return_disagreement: Literal[True],
) -> tuple[np.ndarray, np.ndarray]: ...


def sliding_window_predict(
    image: np.ndarray,
    predict_fn: PredictFn,
    patch_size: Sequence[int],
    *,
    num_classes: int,
    step_size: float = WINDOW_STEP,
    batch_size: int = 2,
    use_gaussian: bool = True,
    mirror_axes: tuple[int, ...] = (),
    accumulate_dtype: DTypeLike = np.float32,
    on_progress: Callable[[int, int], None] | None = None,
    return_disagreement: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Predict a whole image patch by patch and blend the patches, as nnU-Net v2 does.

    The output is the per-voxel importance-weighted average of ``predict_fn``'s outputs over all
    windows covering the voxel (Gaussian weights, or uniform with ``use_gaussian=False``), each
    window's output first averaged over the mirror combinations. Whatever ``predict_fn`` returns
    is averaged: nnU-Net averages **logits** (and takes softmax/argmax afterwards); pass
    probabilities instead to average probabilities. The caller decides; argmax of the result is
    the segmentation either way.

    Precision: the sums are accumulated in ``accumulate_dtype`` (float32 by default). They cannot
    overflow: every weight is at most 1 (the map's maximum) and at least the map's minimum > 0,
    a voxel is covered by at most ``count_windows`` windows (a few dozen), so the weight sum is
    bounded by that count and the weighted output sum by ``count × max|output|`` — far below
    float32's 3.4e38 for any finite network output; the per-voxel division by the weight sum then
    brings the result back to the outputs' range. The relative rounding error grows only with the
    number of overlapping windows (~1e-6 in float32); use ``np.float64`` when reproducibility to
    the last bit across batch sizes matters.

    Args:
        image: ``(C, *spatial)`` input (cast to float32 for ``predict_fn``).
        predict_fn: maps a float32 batch ``(B, C, *patch_size)`` to ``(B, num_classes,
            *patch_size)``; ``B`` ≤ ``batch_size`` (the last batch may be smaller).
        patch_size: spatial patch shape, as many axes as ``image`` has spatial axes.
        num_classes: number of output channels ``K`` of ``predict_fn``.
        step_size: window step as a fraction of the patch size, in (0, 1] (nnU-Net: 0.5).
        batch_size: windows per ``predict_fn`` call.
        use_gaussian: weight each window by :func:`gaussian_importance_map` (else uniformly).
        mirror_axes: spatial axes (0-based, ``0`` = ``i``) for test-time mirroring; all
            ``2**len(mirror_axes)`` flip combinations are averaged. ``()`` disables mirroring.
        accumulate_dtype: ``np.float32`` (default) or ``np.float64``.
        on_progress: called with ``(windows done, windows in all)`` after each batch.
        return_disagreement: also blend each window's :func:`mirror_disagreement` with the
            same weights as the prediction (one more ``accumulate_dtype`` array of the image's
            spatial shape); needs ``mirror_axes``.

    Returns:
        ``(num_classes, *spatial)`` float32 array, same spatial shape as ``image``; with
        ``return_disagreement`` the pair ``(that array, (*spatial) float32 disagreement)``.

    Raises:
        InputError: ``image`` has the wrong number of axes or is empty.
        ConfigError: ``patch_size``, ``step_size``, ``batch_size``, ``num_classes``,
            ``mirror_axes`` or ``accumulate_dtype`` is invalid, or ``return_disagreement``
            without ``mirror_axes``.
        BackendError: ``predict_fn`` returns an array of the wrong shape.
    """
    plan = plan_windows(image, patch_size, num_classes=num_classes, step_size=step_size,
                        batch_size=batch_size, use_gaussian=use_gaussian, mirror_axes=mirror_axes,
                        accumulate_dtype=accumulate_dtype, return_disagreement=return_disagreement)
    data, patch, weight = plan.image, plan.patch, plan.weight
    acc_dtype = weight.dtype
    spatial = data.shape[1:]
    logits = np.zeros((plan.num_classes, *spatial), dtype=acc_dtype)
    weight_sum = np.zeros(spatial, dtype=acc_dtype)
    disagreement = np.zeros(spatial, dtype=acc_dtype) if return_disagreement else None

    n_channels = data.shape[0]
    for first, chunk in plan.batches():
        batch = np.empty((len(chunk), n_channels, *patch), dtype=np.float32)
        for b, sl in enumerate(chunk):
            batch[b] = data[(slice(None), *sl)]
        pred, share = _predict_batch(predict_fn, batch, plan.flips, (len(chunk), plan.num_classes, *patch),
                                     acc_dtype, disagreement=return_disagreement)
        if use_gaussian:
            pred *= weight
            if share is not None:
                share *= weight
        for b, sl in enumerate(chunk):
            logits[(slice(None), *sl)] += pred[b]
            weight_sum[sl] += weight
            if disagreement is not None and share is not None:
                disagreement[sl] += share[b]
        if on_progress is not None:
            on_progress(first + len(chunk), len(plan.slices))

    logits /= weight_sum
    out = np.ascontiguousarray(logits[(slice(None), *plan.revert[1:])], dtype=np.float32)
    if disagreement is None:
        return out
    disagreement /= weight_sum
    return out, np.ascontiguousarray(disagreement[plan.revert[1:]], dtype=np.float32)
