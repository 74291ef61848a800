"""Raw-looking heads: a skull-stripped brain wrapped in CSF, skull, scalp, eyes and neck, in noise.

What a scanner sends is not skull-stripped: the brain sits in a shell of subarachnoid CSF, the
skull (dark cortical tables around fatty marrow), muscle, subcutaneous fat and skin, with orbits
in front and the neck below, and the air around the head is Rician noise. :func:`add_head` builds
that around any skull-stripped ``(i, j, k)`` volume (for example a synthetic BraTS-like case) from
its affine alone, in LPS millimetres, so every runtime test can run on raw-looking input as well as
on skull-stripped input, with the true brain mask known.

Contrasts are relative to the median brain signal of the input, per sequence (fat bright on T1
and T1CE and still bright on FLAIR/T2 without fat suppression; fluid dark on FLAIR and T1, bright
on T2; cortical bone dark everywhere). Thicknesses are adult averages (scalp 5–7 mm, skull 5–7 mm)
modulated by a smooth random field. Imports nothing of glioedge but :mod:`glioedge.errors`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from glioedge.errors import InputError

__all__ = ["HEAD_CONTRAST", "HeadPhantom", "add_head"]

#: sequence → signal of (CSF, cortical bone, marrow, muscle, fat, skin, eye, neck) relative to
#: the median brain signal.
HEAD_CONTRAST: dict[str, tuple[float, ...]] = {
    "flair": (0.20, 0.04, 0.85, 0.55, 1.10, 0.70, 0.15, 0.60),
    "t1ce": (0.30, 0.04, 1.25, 0.60, 1.50, 0.80, 0.30, 0.65),
    "t1": (0.30, 0.04, 1.25, 0.60, 1.50, 0.80, 0.30, 0.65),
    "t2": (1.60, 0.04, 0.90, 0.45, 1.10, 0.70, 1.80, 0.50),
}
_CSF, _BONE, _MARROW, _MUSCLE, _FAT, _SKIN, _EYE, _NECK = range(8)
#: Outer edge (mm from the brain surface) of each shell: CSF, inner table, marrow, outer table,
#: muscle/galea, fat, skin.
_SHELLS = ((2.5, _CSF), (4.0, _BONE), (7.0, _MARROW), (8.5, _BONE), (10.5, _MUSCLE), (15.0, _FAT),
           (17.0, _SKIN))


@dataclass(frozen=True, eq=False)
class HeadPhantom:
    """A raw-looking head and its truth.

    Attributes:
        array: the image ``(i, j, k)``, float32, noise everywhere.
        affine: its LPS affine (the input grid grown by ``pad`` voxels on every side).
        brain_mask: the true brain (the input's nonzero voxels, or the mask passed in).
        tissue: head tissue index map (0 air/brain, then 1 + the ``HEAD_CONTRAST`` index).
        pad: voxels added before and after the input along i, j, k.
    """

    array: np.ndarray
    affine: np.ndarray
    brain_mask: np.ndarray
    tissue: np.ndarray
    pad: tuple[int, int, int]

    def embed(self, array: np.ndarray, fill: Any = 0) -> np.ndarray:
        """An array of the input grid (labels, say) placed on the head's grid.

        Raises:
            InputError: ``array`` does not have the input grid's shape.
        """
        inner = tuple(n - 2 * p for n, p in zip(self.array.shape, self.pad, strict=True))
        if array.shape != inner:
            raise InputError(f"embed: array {array.shape} is not on the input grid {inner}")
        return np.pad(array, [(p, p) for p in self.pad], constant_values=fill)


def _smooth_field(rng: np.random.Generator, points: np.ndarray, wavelength_mm: float) -> np.ndarray:
    """A smooth field in [-1, 1] of LPS position: a sum of four random plane waves."""
    out = np.zeros(points.shape[1:], dtype=np.float32)
    for _ in range(4):
        k = rng.normal(size=3)
        k *= 2 * np.pi / (wavelength_mm * np.linalg.norm(k))
        phase = rng.uniform(0, 2 * np.pi)
        out += np.cos(np.tensordot(k.astype(np.float32), points, axes=1) + np.float32(phase))
    return out / 4


def _points(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    idx = np.stack(np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij"))
    a = affine.astype(np.float32)
    return np.tensordot(a[:3, :3], idx, axes=1) + a[:3, 3][:, None, None, None]


def add_head(
    brain: np.ndarray,
    affine: np.ndarray,
    modality: str = "flair",
    *,
    brain_mask: np.ndarray | None = None,
    pad_mm: float = 24.0,
    noise: float = 0.03,
    bias: float = 0.15,
    neck: bool = True,
    seed: int = 0,
) -> HeadPhantom:
    """Wrap a skull-stripped brain in a head with skull, scalp, orbits, neck and background noise.

    Args:
        brain: skull-stripped image ``(i, j, k)``, 0 outside the brain.
        affine: its LPS affine (any orientation and spacing).
        modality: ``flair``, ``t1ce``, ``t1`` or ``t2`` (selects :data:`HEAD_CONTRAST`).
        brain_mask: the brain (default ``brain != 0``).
        pad_mm: margin added on every side, so that the skull and scalp fit in the grid.
        noise: Rician noise sigma relative to the median brain signal (everywhere, air included).
        bias: amplitude of a smooth multiplicative receive-coil field over the whole head.
        neck: add the neck below the brain and the orbits in front of it.
        seed: random seed of thickness variation, texture, bias and noise.

    Returns:
        The :class:`HeadPhantom`.

    Raises:
        InputError: not 3-D, an unknown modality, an empty brain, or a mask of another shape.
    """
    brain = np.asarray(brain, dtype=np.float32)
    affine = np.asarray(affine, dtype=np.float64)
    if brain.ndim != 3 or affine.shape != (4, 4):
        raise InputError(f"add_head: expected a 3-D brain and a 4×4 affine, got {brain.shape}, "
                         f"{affine.shape}")
    if modality not in HEAD_CONTRAST:
        raise InputError(f"add_head: modality {modality!r}; valid: {', '.join(HEAD_CONTRAST)}")
    mask = brain != 0 if brain_mask is None else np.asarray(brain_mask, dtype=bool)
    if mask.shape != brain.shape:
        raise InputError(f"add_head: brain_mask {mask.shape} differs from the brain {brain.shape}")
    if not mask.any():
        raise InputError("add_head: the brain is empty (every voxel 0)")
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    pad = tuple(int(np.ceil(pad_mm / s)) for s in spacing)
    shape = tuple(n + 2 * p for n, p in zip(brain.shape, pad, strict=True))
    head_affine = affine.copy()
    head_affine[:3, 3] = affine[:3, :3] @ -np.asarray(pad, dtype=np.float64) + affine[:3, 3]
    mask = np.pad(mask, [(p, p) for p in pad])
    image_brain = np.pad(brain, [(p, p) for p in pad])
    rng = np.random.default_rng(seed)
    p = _points(shape, head_affine)

    # Distance to the brain (mm), thickness modulated by a smooth field.
    dist = ndimage.distance_transform_edt(~mask, sampling=spacing).astype(np.float32)
    dist *= np.float32(1.0) + np.float32(0.15) * _smooth_field(rng, p, 90.0)
    tissue = np.zeros(shape, dtype=np.uint8)
    inner = 0.0
    for outer, idx in _SHELLS:
        tissue[(dist > inner) & (dist <= outer)] = idx + 1
        inner = outer
    if neck:
        world_mask = p[:, mask]
        centre = world_mask.mean(axis=1)
        z_min = float(world_mask[2].min())
        radius = 0.45 * (world_mask[0].max() - world_mask[0].min())
        dx, dy = p[0] - centre[0], p[1] - (centre[1] + 10.0)
        ell = (dx / radius) ** 2 + (dy / (1.1 * radius)) ** 2
        neck_region = (ell <= 1.0) & (p[2] < z_min + 25.0) & (dist > 17.0)
        tissue[neck_region] = _NECK + 1
        tissue[neck_region & (ell > 0.8)] = _FAT + 1
        y_front = float(world_mask[1].min())  # LPS: anterior is −y
        for side in (-1.0, 1.0):
            eye_c = np.array([centre[0] + side * 30.0, y_front + 18.0, z_min + 22.0], dtype=np.float32)
            eye = ((p - eye_c[:, None, None, None]) ** 2).sum(axis=0) <= 11.0**2
            tissue[eye & ~mask] = _EYE + 1
    tissue[mask] = 0

    ref = float(np.median(image_brain[mask]))
    lut = np.asarray((0.0, *HEAD_CONTRAST[modality]), dtype=np.float32) * np.float32(ref)
    texture = np.float32(1.0) + np.float32(0.05) * _smooth_field(rng, p, 12.0)
    image = np.where(mask, image_brain, lut[tissue] * texture).astype(np.float32)
    image = ndimage.gaussian_filter(image, 0.5 / spacing * spacing.min()) * (~mask) + image * mask
    image *= np.exp(np.float32(bias) * _smooth_field(rng, p, 250.0))
    sigma = np.float32(noise * ref)
    n1 = rng.standard_normal(shape, dtype=np.float32) * sigma
    n2 = rng.standard_normal(shape, dtype=np.float32) * sigma
    out = np.sqrt((image + n1) ** 2 + n2**2).astype(np.float32)
    return HeadPhantom(array=out, affine=head_affine, brain_mask=mask, tissue=tissue, pad=pad)  # type: ignore[arg-type]
