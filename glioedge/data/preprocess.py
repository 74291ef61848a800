"""The one preprocessing definition shared by training and the (torch-free) runtime.

numpy / SimpleITK only. Steps, as nnU-Net v2's ``DefaultPreprocessor`` with its MR plans
(``ZScoreNormalization``, ``use_mask_for_norm``; checked voxel by voxel against the real nnU-Net in
``tests/bench/test_nnunet_parity.py``):

1. brain mask = union of nonzero voxels over the channels (or a given mask), holes filled
   (``fill_holes``, nnU-Net's ``create_nonzero_mask``);
2. crop to the mask's bounding box (plus ``crop_margin_vox``);
3. z-score each channel with the mean and standard deviation inside the brain mask; voxels
   outside the mask are set to exactly 0;
4. resample to ``target_spacing`` (skipped when the spacing already matches within 1e-4 mm):
   images with ``image_interpolation``, label and mask nearest-neighbour, in physical space
   (SimpleITK, same direction). ``resampling="nnunet"`` (default) does it as nnU-Net: the grid
   has ``round(extent / target_spacing)`` voxels spanning the crop's extent (so its spacing is
   within half a voxel over the extent of the target), and the z-scored image is resampled
   (step 3 before step 4; nothing is re-masked) with nnU-Net's own interpolation
   (``scipy.ndimage.zoom`` as ``skimage.transform.resize`` calls it: ``linear`` is nnU-Net's
   order 1, ``bspline3`` its default order 3). ``resampling="centred"`` is glioedge's earlier
   scheme, kept so that bundles made with it get the input they were trained on: a grid of exactly
   ``target_spacing`` centred on the crop, resampled first and z-scored inside the resampled mask.
   A manifest or checkpoint without these keys is read as ``centred`` without hole filling.

Image interpolation defaults to ``"linear"``: BraTS images are skull-stripped with a hard edge to 0,
where a cubic B-spline (nnU-Net's order 3) rings and overshoots; linear is also several times
faster, which matters on an edge box resampling anisotropic clinical series. ``"bspline3"`` is
available for nnU-Net fidelity. Every step is recorded in a :class:`PreprocessRecord` so that
:func:`restore_to_original` can put predictions back onto the original grid.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk  # noqa: N813
from scipy import ndimage

from glioedge.config_keys import reject_unknown_keys
from glioedge.data.geometry import (
    affine_to_sitk_geometry,
    array_from_sitk,
    sitk_from_array,
    spacing_of,
)
from glioedge.errors import ConfigError, InputError

__all__ = [
    "PreprocessParams",
    "PreprocessRecord",
    "PreprocessedCase",
    "brain_bbox",
    "preprocess",
    "resample_to_grid",
    "restore_to_original",
]

_INTERPOLATORS = {
    "nearest": sitk.sitkNearestNeighbor,
    "linear": sitk.sitkLinear,
    "bspline3": sitk.sitkBSpline,
}
_NORMALIZATIONS = ("zscore_brain", "none")
_RESAMPLING = ("nnunet", "centred")
#: What parameters recorded before ``fill_holes`` / ``resampling`` existed meant.
_LEGACY = {"fill_holes": False, "resampling": "centred"}
_SPACING_TOL_MM = 1e-4

Matrix = tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class PreprocessParams:
    """Everything that defines a network's input; recorded in checkpoints and bundle manifests.

    Attributes:
        modalities: channel order (modality names).
        target_spacing: voxel spacing (mm) of the network's grid.
        crop_to_nonzero: crop to the brain's bounding box.
        normalization: ``"zscore_brain"`` (per channel, inside the brain mask) or ``"none"``.
        image_interpolation: ``"linear"`` (default), ``"bspline3"`` or ``"nearest"``.
        label_interpolation: must be ``"nearest"``.
        crop_margin_vox: voxels kept around the brain's bounding box.
        fill_holes: fill enclosed holes of the brain mask (nnU-Net).
        resampling: ``"nnunet"`` or ``"centred"`` (see the module docstring).
    """

    modalities: tuple[str, ...]
    target_spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    crop_to_nonzero: bool = True
    normalization: str = "zscore_brain"
    image_interpolation: str = "linear"
    label_interpolation: str = "nearest"
    crop_margin_vox: int = 0
    fill_holes: bool = True
    resampling: str = "nnunet"

    def __post_init__(self) -> None:
        """Normalise types and validate values.

        Raises:
            ConfigError: a value is out of its accepted set.
        """
        mods = tuple(str(getattr(m, "value", m)) for m in self.modalities)
        object.__setattr__(self, "modalities", mods)
        object.__setattr__(self, "target_spacing", tuple(float(s) for s in self.target_spacing))
        if not mods or len(set(mods)) != len(mods):
            raise ConfigError(f"modalities must be non-empty and distinct, got {mods}")
        if len(self.target_spacing) != 3 or min(self.target_spacing) <= 0:
            raise ConfigError(f"target_spacing must be 3 positive mm, got {self.target_spacing}")
        if self.normalization not in _NORMALIZATIONS:
            raise ConfigError(f"normalization {self.normalization!r}; valid: {_NORMALIZATIONS}")
        if self.image_interpolation not in _INTERPOLATORS:
            raise ConfigError(
                f"image_interpolation {self.image_interpolation!r}; valid: {list(_INTERPOLATORS)}"
            )
        if self.label_interpolation != "nearest":
            raise ConfigError("label_interpolation must be 'nearest'")
        if self.resampling not in _RESAMPLING:
            raise ConfigError(f"resampling {self.resampling!r}; valid: {_RESAMPLING}")
        if int(self.crop_margin_vox) < 0:
            raise ConfigError(f"crop_margin_vox must be >= 0, got {self.crop_margin_vox}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (lists for tuples)."""
        d = asdict(self)
        d["modalities"] = list(self.modalities)
        d["target_spacing"] = list(self.target_spacing)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreprocessParams:
        """Inverse of :meth:`to_dict`; keys recorded before they existed take their old meaning.

        Raises:
            ConfigError: unknown keys (named) or invalid values.
        """
        reject_unknown_keys(cls, data)
        kw = {**_LEGACY, **data}
        if "modalities" in kw:
            kw["modalities"] = tuple(kw["modalities"])
        if "target_spacing" in kw:
            kw["target_spacing"] = tuple(kw["target_spacing"])
        return cls(**kw)


def _mat(a: np.ndarray) -> Matrix:
    return tuple(tuple(float(v) for v in row) for row in np.asarray(a, dtype=np.float64))


@dataclass(frozen=True)
class PreprocessRecord:
    """What :func:`preprocess` did to one case (JSON-serialisable, invertible).

    ``crop_bbox`` is ``((lo_i, hi_i), (lo_j, hi_j), (lo_k, hi_k))``, ``hi`` exclusive, in the
    original grid. ``intensity_stats`` holds ``(mean, std)`` per channel used by the z-score.
    """

    original_shape: tuple[int, int, int]
    original_affine: Matrix
    crop_bbox: tuple[tuple[int, int], ...]
    cropped_affine: Matrix
    resampled_shape: tuple[int, int, int]
    resampled_affine: Matrix
    intensity_stats: tuple[tuple[float, float], ...] = ()

    @property
    def cropped_shape(self) -> tuple[int, int, int]:
        """Shape of the cropped (not yet resampled) grid."""
        return tuple(hi - lo for lo, hi in self.crop_bbox)  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (nested lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreprocessRecord:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: unknown keys.
        """
        reject_unknown_keys(cls, data)

        def tup(x: Any) -> Any:
            return tuple(tup(v) for v in x) if isinstance(x, list | tuple) else x

        return cls(**{k: tup(v) for k, v in data.items()})


@dataclass
class PreprocessedCase:
    """Network input on the preprocessed grid.

    Attributes:
        data: ``(C, i, j, k)`` float32 in ``params.modalities`` order.
        label: ``(i, j, k)`` uint8 internal classes, or None.
        mask: ``(i, j, k)`` bool brain mask.
        record: how to go back to the original grid.
    """

    data: np.ndarray
    label: np.ndarray | None
    mask: np.ndarray
    record: PreprocessRecord


def brain_bbox(mask: np.ndarray, margin: int = 0) -> tuple[tuple[int, int], ...]:
    """Bounding box ``((lo, hi), …)`` (hi exclusive) of a non-empty mask, grown by ``margin``.

    Raises:
        InputError: the mask is empty.
    """
    if not mask.any():
        raise InputError("brain mask is empty: every image voxel is 0")
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        box.append((max(int(idx[0]) - margin, 0), min(int(idx[-1]) + 1 + margin, mask.shape[axis])))
    return tuple(box)


def _target_grid(
    shape: Sequence[int], affine: np.ndarray, spacing: Sequence[float], *, keep_extent: bool = False
) -> tuple[tuple[int, int, int], np.ndarray]:
    """Grid of ``round(shape × old / spacing)`` voxels, same direction and centre as
    ``(shape, affine)``: of exactly ``spacing``, or (``keep_extent``) of the spacing that spans the
    same extent (nnU-Net's ``compute_new_shape`` + ``skimage.transform.resize``)."""
    old = np.asarray(spacing_of(affine))
    new = np.asarray(spacing, dtype=np.float64)
    size = np.maximum(np.round(np.asarray(shape) * old / new), 1).astype(int)
    if keep_extent:
        new = np.asarray(shape) * old / size
    direction = affine[:3, :3] / old[None, :]
    centre = affine[:3, :3] @ ((np.asarray(shape) - 1) / 2.0) + affine[:3, 3]
    out = np.eye(4)
    out[:3, :3] = direction * new[None, :]
    out[:3, 3] = centre - out[:3, :3] @ ((size - 1) / 2.0)
    return (int(size[0]), int(size[1]), int(size[2])), out


def resample_to_grid(
    array: np.ndarray,
    affine: np.ndarray,
    shape: Sequence[int],
    target_affine: np.ndarray,
    interpolation: str,
    *,
    default: float = 0.0,
) -> np.ndarray:
    """Resample a 3-D array onto another grid through physical (LPS) coordinates.

    Raises:
        ConfigError: unknown interpolation.
    """
    if interpolation not in _INTERPOLATORS:
        raise ConfigError(f"interpolation {interpolation!r}; valid: {list(_INTERPOLATORS)}")
    src = sitk_from_array(array, affine)
    ref = sitk.Image([int(s) for s in shape], sitk.sitkUInt8)
    sp, origin, direction = affine_to_sitk_geometry(target_affine)
    ref.SetSpacing(sp)
    ref.SetOrigin(origin)
    ref.SetDirection(direction)
    out = sitk.Resample(
        src, ref, sitk.Transform(), _INTERPOLATORS[interpolation], float(default),
        src.GetPixelID(),
    )
    return array_from_sitk(out)


def _same_grid(a: np.ndarray, spacing: Sequence[float]) -> bool:
    return bool(np.allclose(spacing_of(a), spacing, atol=_SPACING_TOL_MM, rtol=0))


def preprocess(
    images: Mapping[str, np.ndarray],
    affine: np.ndarray,
    params: PreprocessParams,
    label: np.ndarray | None = None,
    brain_mask: np.ndarray | None = None,
) -> PreprocessedCase:
    """Crop, resample and normalise one case (see the module docstring).

    Args:
        images: modality name (or :class:`~glioedge.data.modalities.Modality`) → ``(i, j, k)``.
        affine: 4×4 LPS affine shared by all images.
        params: preprocessing parameters.
        label: optional ``(i, j, k)`` internal labels.
        brain_mask: optional brain mask; default is the union of nonzero voxels.

    Raises:
        InputError: a modality is missing, shapes differ, or the brain mask is empty.
    """
    named = {str(getattr(k, "value", k)): v for k, v in images.items()}
    missing = [m for m in params.modalities if m not in named]
    if missing:
        raise InputError(f"missing modalities {missing}; have {sorted(named)}")
    stack = np.stack([np.asarray(named[m], dtype=np.float32) for m in params.modalities])
    shape = stack.shape[1:]
    affine = np.asarray(affine, dtype=np.float64)
    if len(shape) != 3 or affine.shape != (4, 4):
        raise InputError(f"expected 3-D images and a 4×4 affine, got {shape} and {affine.shape}")
    for name, other in (("label", label), ("brain_mask", brain_mask)):
        if other is not None and other.shape != shape:
            raise InputError(f"{name} has shape {other.shape}, images have {shape}")
    mask = (stack != 0).any(axis=0) if brain_mask is None else np.asarray(brain_mask, bool)
    if params.fill_holes:
        mask = ndimage.binary_fill_holes(mask)
    if params.crop_to_nonzero:
        bbox = brain_bbox(mask, int(params.crop_margin_vox))
    else:
        bbox = tuple((0, int(n)) for n in shape)
    sl = tuple(slice(lo, hi) for lo, hi in bbox)
    cropped_aff = affine.copy()
    cropped_aff[:3, 3] = affine[:3, :3] @ np.array([lo for lo, _ in bbox]) + affine[:3, 3]
    stack, mask = stack[(slice(None), *sl)], mask[sl]
    lab = None if label is None else np.asarray(label, dtype=np.uint8)[sl]
    nnunet = params.resampling == "nnunet"
    if nnunet:  # nnU-Net: z-score on the cropped grid, then resample
        stack, stats = _normalise(stack, mask, params.normalization)
    if _same_grid(affine, params.target_spacing):
        new_shape, new_aff = stack.shape[1:], cropped_aff
    else:
        new_shape, new_aff = _target_grid(stack.shape[1:], cropped_aff, params.target_spacing,
                                          keep_extent=nnunet)
        stack = np.stack([
            _zoom(c, new_shape, params.image_interpolation) if nnunet else
            resample_to_grid(c, cropped_aff, new_shape, new_aff, params.image_interpolation)
            for c in stack
        ])
        mask = resample_to_grid(mask.astype(np.uint8), cropped_aff, new_shape, new_aff,
                                "nearest").astype(bool)
        if lab is not None:
            lab = resample_to_grid(lab, cropped_aff, new_shape, new_aff, "nearest")
    if nnunet:
        data = np.asarray(stack, dtype=np.float32)
    else:
        data, stats = _normalise(stack, mask, params.normalization)
    record = PreprocessRecord(
        original_shape=tuple(int(n) for n in shape),  # type: ignore[arg-type]
        original_affine=_mat(affine),
        crop_bbox=tuple((int(lo), int(hi)) for lo, hi in bbox),
        cropped_affine=_mat(cropped_aff),
        resampled_shape=tuple(int(n) for n in new_shape),  # type: ignore[arg-type]
        resampled_affine=_mat(new_aff),
        intensity_stats=tuple(stats),
    )
    return PreprocessedCase(data=data, label=lab, mask=mask, record=record)


_ZOOM_ORDER = {"nearest": 0, "linear": 1, "bspline3": 3}


def _zoom(image: np.ndarray, shape: Sequence[int], interpolation: str) -> np.ndarray:
    """``image`` resized to ``shape`` over the same extent, exactly as nnU-Net resamples data
    (``skimage.transform.resize(order, mode="edge", anti_aliasing=False)``, i.e.
    ``scipy.ndimage.zoom(grid_mode=True, mode="nearest")`` clipped to the input's range)."""
    order = _ZOOM_ORDER[interpolation]
    factors = np.asarray(shape, dtype=np.float64) / np.asarray(image.shape, dtype=np.float64)
    out = ndimage.zoom(image, factors, order=order, mode="nearest", grid_mode=True)
    if out.shape != tuple(shape):  # zoom rounds the output shape itself; never off here, but say so
        raise InputError(f"resampling gave shape {out.shape}, expected {tuple(shape)}")
    if order:
        np.clip(out, image.min(), image.max(), out=out)
    return out.astype(np.float32, copy=False)


def _normalise(
    stack: np.ndarray, mask: np.ndarray, normalization: str
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Per-channel z-score inside ``mask`` (0 outside), or a float32 copy for ``"none"``."""
    stats = []
    data = np.zeros(stack.shape, dtype=np.float32)
    for c in range(stack.shape[0]):
        if normalization == "none":
            data[c] = stack[c]
            stats.append((0.0, 1.0))
            continue
        vals = stack[c][mask].astype(np.float64)
        mean = float(vals.mean()) if vals.size else 0.0
        std = float(vals.std()) if vals.size else 1.0
        std = max(std, 1e-8)
        data[c][mask] = ((vals - mean) / std).astype(np.float32)
        stats.append((mean, std))
    return data, stats


def restore_to_original(
    array: np.ndarray, record: PreprocessRecord, *, is_label: bool,
    on_crop: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Map a prediction from the preprocessed grid back onto the original grid.

    Args:
        array: ``(C, *resampled_shape)`` probabilities (resampled linearly) or
            ``(*resampled_shape)`` labels (nearest neighbour); a 3-D array with
            ``is_label=False`` is treated as one channel.
        record: the record of :func:`preprocess`.
        is_label: nearest-neighbour label map (True) or probability map (False).
        on_crop: applied to the (channels, cropped grid) array after resampling and before the
            un-crop; e.g. a softmax, so that logits are resampled and then turned into
            probabilities, as nnU-Net does.

    Returns:
        The array on the original grid. Outside the crop: 0 (background) for labels; for
        probabilities with several channels, channel 0 (background) is 1 and the others 0.

    Raises:
        InputError: the array's spatial shape is not ``record.resampled_shape``.
    """
    arr = np.asarray(array)
    squeeze = arr.ndim == 3
    chans = arr[None] if squeeze else arr
    if tuple(chans.shape[1:]) != tuple(record.resampled_shape):
        raise InputError(
            f"array spatial shape {chans.shape[1:]} is not the preprocessed shape "
            f"{record.resampled_shape}"
        )
    cropped_aff = np.asarray(record.cropped_affine)
    resampled_aff = np.asarray(record.resampled_affine)
    cshape = record.cropped_shape
    if cshape == tuple(record.resampled_shape) and np.allclose(cropped_aff, resampled_aff):
        back = chans
    else:
        interp = "nearest" if is_label else "linear"
        back = np.stack([
            resample_to_grid(c, resampled_aff, cshape, cropped_aff, interp) for c in chans
        ])
    if on_crop is not None:
        back = on_crop(back)
    out = np.zeros((chans.shape[0], *record.original_shape), dtype=back.dtype)
    if not is_label and chans.shape[0] > 1:
        out[0] = 1
    sl = tuple(slice(lo, hi) for lo, hi in record.crop_bbox)
    out[(slice(None), *sl)] = back
    return out[0] if squeeze else out
