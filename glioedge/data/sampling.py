"""nnU-Net-style patch sampling with foreground oversampling (numpy only)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from glioedge.errors import ConfigError, InputError

__all__ = ["FgLocations", "PatchSampler", "crop_with_padding", "foreground_locations"]

logger = logging.getLogger(__name__)

#: class → ``(N, 3)`` int voxel coordinates of that class (classes > 0 only).
FgLocations = dict[int, np.ndarray]


def foreground_locations(
    label: np.ndarray, max_points: int = 10000, rng: np.random.Generator | None = None
) -> FgLocations:
    """Voxel coordinates of each foreground class, subsampled to ``max_points`` per class.

    Kept per class so that sampling can pick a class first (as nnU-Net does), which makes
    small classes (ET) as likely a patch centre as large ones (ED).

    Args:
        label: ``(i, j, k)`` internal labels.
        max_points: at most this many coordinates per class (a random, sorted subset).
        rng: generator for the subset (default: seeded with 0, deterministic).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    out: FgLocations = {}
    for cls in np.unique(label).tolist():
        if cls == 0:
            continue
        coords = np.argwhere(label == cls)
        if len(coords) > max_points:
            keep = np.sort(rng.choice(len(coords), size=max_points, replace=False))
            coords = coords[keep]
        out[int(cls)] = coords.astype(np.int32)
    return out


def crop_with_padding(
    array: np.ndarray, start: Sequence[int], size: Sequence[int], fill: float = 0
) -> np.ndarray:
    """``array[..., start:start+size]`` over the last 3 axes, padding with ``fill`` outside."""
    spatial = array.shape[-3:]
    lead = array.shape[:-3]
    out = np.full((*lead, *size), fill, dtype=array.dtype)
    src, dst = [], []
    for s0, n, dim in zip(start, size, spatial, strict=True):
        lo, hi = max(s0, 0), min(s0 + n, dim)
        src.append(slice(lo, max(hi, lo)))
        dst.append(slice(lo - s0, lo - s0 + max(hi - lo, 0)))
    out[(..., *dst)] = array[(..., *src)]
    return out


class PatchSampler:
    """Draws training patches, centring a share of them on foreground (nnU-Net style).

    Args:
        patch_size: patch size ``(i, j, k)`` in voxels.
        oversample_foreground: probability that a patch is centred on a tumour voxel.
        rng: random generator (all randomness comes from it).
        input_size: size of the patches returned, when larger than ``patch_size`` (room for
            a spatial augmentation that is then cropped to ``patch_size``,
            see :meth:`Augmenter.input_size`). Placement is decided for ``patch_size`` (the
            foreground voxel lies inside the central ``patch_size`` region) and the returned
            patch extends symmetrically around it, zero-padded outside the volume.

    Raises:
        ConfigError: invalid patch size or probability.
    """

    def __init__(
        self,
        patch_size: tuple[int, int, int],
        oversample_foreground: float = 1 / 3,
        rng: np.random.Generator | None = None,
        input_size: tuple[int, int, int] | None = None,
    ) -> None:
        if len(patch_size) != 3 or min(patch_size) < 1:
            raise ConfigError(f"patch_size must be 3 positive ints, got {patch_size}")
        if not 0.0 <= oversample_foreground <= 1.0:
            raise ConfigError(f"oversample_foreground must be in [0, 1], got {oversample_foreground}")
        self.patch_size = tuple(int(p) for p in patch_size)
        self.oversample_foreground = float(oversample_foreground)
        self.rng = rng if rng is not None else np.random.default_rng()
        size = tuple(int(p) for p in (input_size or self.patch_size))
        if len(size) != 3 or any(i < p for i, p in zip(size, self.patch_size, strict=True)):
            raise ConfigError(f"input_size {input_size} must be >= patch_size {patch_size}")
        self.input_size = size

    def _start(self, shape: Sequence[int], centre: np.ndarray | None) -> list[int]:
        starts = []
        for a, (dim, p) in enumerate(zip(shape, self.patch_size, strict=True)):
            lo, hi = min(0, dim - p), max(0, dim - p)
            if centre is None:
                starts.append(int(self.rng.integers(lo, hi + 1)))
            else:
                starts.append(int(np.clip(int(centre[a]) - p // 2, lo, hi)))
        return starts

    def sample(
        self,
        data: np.ndarray,
        label: np.ndarray,
        fg_locations: FgLocations | None = None,
        *,
        force_fg: bool | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw one patch.

        Args:
            data: ``(C, i, j, k)`` image (may be a memory map).
            label: ``(i, j, k)`` labels.
            fg_locations: from :func:`foreground_locations` (computed here when None).
            force_fg: True/False forces a foreground/random patch (per-batch scheduling as in
                nnU-Net); None draws with probability ``oversample_foreground``.

        Returns:
            ``(patch (C, *input_size), label_patch (*input_size))``; zero-padded where the
            volume is smaller than the patch.

        Raises:
            InputError: data and label shapes do not match.
        """
        if data.ndim != 4 or data.shape[1:] != label.shape:
            raise InputError(f"data {data.shape} must be (C, *label.shape), label {label.shape}")
        want_fg = (
            self.rng.random() < self.oversample_foreground if force_fg is None else force_fg
        )
        centre = None
        if want_fg:
            locs = fg_locations if fg_locations is not None else foreground_locations(
                np.asarray(label), rng=self.rng
            )
            classes = [c for c, v in sorted(locs.items()) if len(v)]
            if classes:
                pts = locs[classes[int(self.rng.integers(len(classes)))]]
                centre = pts[int(self.rng.integers(len(pts)))]
            else:
                logger.debug("no foreground in this case; drawing a random patch")
        start = [
            s - (i - p) // 2
            for s, i, p in zip(self._start(label.shape, centre), self.input_size,
                               self.patch_size, strict=True)
        ]
        patch = crop_with_padding(data, start, self.input_size, 0)
        lab = crop_with_padding(label, start, self.input_size, 0)
        return patch.astype(np.float32, copy=False), lab.astype(np.uint8, copy=False)
