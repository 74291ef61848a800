"""numpy/scipy data augmentation in the spirit of nnU-Net (batchgenerators' default pipeline).

Order: spatial (rotation + scaling in one ``affine_transform`` per channel, optional elastic
deformation; from a larger input patch, centre-cropped to the output size so that rotated
corners are real data rather than zeros) → gaussian noise → gaussian blur → multiplicative
brightness → contrast → gamma (also inverted) → mirroring. All randomness comes from the
``numpy.random.Generator`` given to :class:`Augmenter`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from scipy import ndimage

from glioedge.config_keys import reject_unknown_keys
from glioedge.errors import ConfigError

__all__ = ["AugmentConfig", "Augmenter", "rotation_matrix"]


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of each transform (nnU-Net-like defaults).

    Probabilities are per sample (``*_per_channel`` ones per channel, given the sample).
    """

    enabled: bool = True
    p_rotation: float = 0.2
    rotation_deg: float = 30.0
    p_scale: float = 0.2
    scale_range: tuple[float, float] = (0.85, 1.25)
    p_elastic: float = 0.0
    elastic_alpha_vox: float = 6.0
    elastic_sigma_vox: float = 8.0
    p_noise: float = 0.1
    noise_variance: tuple[float, float] = (0.0, 0.1)
    p_blur: float = 0.2
    p_blur_per_channel: float = 0.5
    blur_sigma: tuple[float, float] = (0.5, 1.0)
    p_brightness: float = 0.15
    brightness_range: tuple[float, float] = (0.75, 1.25)
    p_contrast: float = 0.15
    contrast_range: tuple[float, float] = (0.75, 1.25)
    p_gamma: float = 0.3
    p_gamma_inverted: float = 0.1
    gamma_range: tuple[float, float] = (0.7, 1.5)
    p_mirror: float = 0.5
    mirror_axes: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self) -> None:
        """Validate probabilities.

        Raises:
            ConfigError: a probability is outside [0, 1] or a mirror axis is not 0..2.
        """
        for f in fields(self):
            if f.name.startswith("p_"):
                v = getattr(self, f.name)
                if not 0.0 <= float(v) <= 1.0:
                    raise ConfigError(f"AugmentConfig.{f.name} must be in [0, 1], got {v}")
            elif isinstance(getattr(self, f.name), list):
                object.__setattr__(self, f.name, tuple(getattr(self, f.name)))
        if any(a not in (0, 1, 2) for a in self.mirror_axes):
            raise ConfigError(f"mirror_axes must be within (0, 1, 2), got {self.mirror_axes}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AugmentConfig:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: unknown keys (named) or invalid values.
        """
        reject_unknown_keys(cls, data)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def rotation_matrix(angles_rad: tuple[float, float, float]) -> np.ndarray:
    """Rotation about axes 0, 1, 2 (applied in that order)."""
    mats = []
    for axis, a in enumerate(angles_rad):
        c, s = math.cos(a), math.sin(a)
        i, j = [x for x in range(3) if x != axis]
        m = np.eye(3)
        m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
        mats.append(m)
    return mats[2] @ mats[1] @ mats[0]


class Augmenter:
    """Applies :class:`AugmentConfig` to ``(patch (C, i, j, k), label (i, j, k))`` pairs.

    Args:
        config: what to apply.
        rng: the only source of randomness (same rng state → same output).
    """

    def __init__(self, config: AugmentConfig, rng: np.random.Generator) -> None:
        self.config = config
        self.rng = rng

    # ----------------------------------------------------------------- spatial
    def input_size(self, patch_size: tuple[int, ...]) -> tuple[int, ...]:
        """Size of the patch to sample so that any rotation/scaling of it covers ``patch_size``.

        Equals ``patch_size`` when augmentation or spatial transforms are off.
        """
        c = self.config
        if not c.enabled or (c.p_rotation == 0 and c.p_scale == 0):
            return tuple(patch_size)
        half = np.array(patch_size, dtype=float) / 2
        corners = np.array(list(itertools.product(*[(-h, h) for h in half])))
        a = math.radians(c.rotation_deg) if c.p_rotation > 0 else 0.0
        s = min(c.scale_range) if c.p_scale > 0 else 1.0
        ext = np.zeros(3)
        for signs in itertools.product((-1, 0, 1), repeat=3):
            r = rotation_matrix(tuple(a * x for x in signs)) / s  # type: ignore[arg-type]
            ext = np.maximum(ext, np.abs(corners @ r.T).max(axis=0))
        sizes = zip(ext.tolist(), patch_size, strict=True)
        return tuple(max(math.ceil(2 * e - 1e-6), int(p)) for e, p in sizes)

    def _spatial(
        self, patch: np.ndarray, label: np.ndarray, out_size: tuple[int, ...]
    ) -> tuple[np.ndarray, np.ndarray]:
        c, rng = self.config, self.rng
        do_rot = rng.random() < c.p_rotation
        do_scale = rng.random() < c.p_scale
        do_elastic = rng.random() < c.p_elastic
        in_size = np.array(patch.shape[1:], dtype=float)
        out = np.array(out_size, dtype=float)
        if not (do_rot or do_scale or do_elastic):
            start = ((in_size - out) // 2).astype(int)
            sl = tuple(slice(s, s + n) for s, n in zip(start, out_size, strict=True))
            return patch[(slice(None), *sl)], label[sl]
        m = np.eye(3)
        if do_rot:
            lim = math.radians(c.rotation_deg)
            m = rotation_matrix(tuple(rng.uniform(-lim, lim, size=3)))  # type: ignore[arg-type]
        if do_scale:
            m = m / rng.uniform(*c.scale_range)
        # output voxel o → input voxel centre_in + m @ (o - centre_out)
        centre_in, centre_out = (in_size - 1) / 2, (out - 1) / 2
        offset = centre_in - m @ centre_out
        if do_elastic:
            coords = np.indices(out_size, dtype=np.float32).reshape(3, -1)
            coords = (m @ coords + offset[:, None]).reshape(3, *out_size)
            for a in range(3):
                disp = ndimage.gaussian_filter(
                    rng.uniform(-1, 1, size=out_size).astype(np.float32), c.elastic_sigma_vox
                )
                disp *= c.elastic_alpha_vox / max(float(np.abs(disp).max()), 1e-6)
                coords[a] += disp
            img = np.stack([ndimage.map_coordinates(ch, coords, order=1, cval=0.0)
                            for ch in patch])
            lab = ndimage.map_coordinates(label, coords, order=0, cval=0)
            return img.astype(np.float32), lab.astype(label.dtype)
        img = np.stack([
            ndimage.affine_transform(ch, m, offset, output_shape=out_size, order=1,
                                     mode="constant", cval=0.0)
            for ch in patch
        ])
        lab = ndimage.affine_transform(label, m, offset, output_shape=out_size, order=0,
                                       mode="constant", cval=0)
        return img.astype(np.float32), lab

    # --------------------------------------------------------------- intensity
    def _intensity(self, x: np.ndarray) -> np.ndarray:
        c, rng = self.config, self.rng
        if rng.random() < c.p_noise:
            var = rng.uniform(*c.noise_variance)
            x = x + rng.normal(0.0, math.sqrt(var), size=x.shape).astype(np.float32)
        if rng.random() < c.p_blur:
            for ch in range(x.shape[0]):
                if rng.random() < c.p_blur_per_channel:
                    x[ch] = ndimage.gaussian_filter(x[ch], rng.uniform(*c.blur_sigma))
        if rng.random() < c.p_brightness:
            x = x * np.float32(rng.uniform(*c.brightness_range))
        if rng.random() < c.p_contrast:
            for ch in range(x.shape[0]):
                factor = np.float32(rng.uniform(*c.contrast_range))
                lo, hi, mean = x[ch].min(), x[ch].max(), x[ch].mean()
                x[ch] = np.clip((x[ch] - mean) * factor + mean, lo, hi)
        if rng.random() < c.p_gamma_inverted:
            x = -self._gamma(-x)
        if rng.random() < c.p_gamma:
            x = self._gamma(x)
        return x.astype(np.float32, copy=False)

    def _gamma(self, x: np.ndarray) -> np.ndarray:
        """Gamma per channel on the [min, max]-rescaled values, retaining mean and std."""
        lo_g, hi_g = self.config.gamma_range
        for ch in range(x.shape[0]):
            g = self.rng.uniform(lo_g, 1.0) if self.rng.random() < 0.5 and lo_g < 1 else (
                self.rng.uniform(max(lo_g, 1.0), hi_g))
            v = x[ch]
            mean, std = v.mean(), v.std()
            lo, rng_ = v.min(), v.max() - v.min()
            v = np.power((v - lo) / (rng_ + 1e-7), g) * (rng_ + 1e-7) + lo
            v = (v - v.mean()) / (v.std() + 1e-8) * std + mean
            x[ch] = v
        return x

    # -------------------------------------------------------------------- call
    def __call__(
        self,
        patch: np.ndarray,
        label: np.ndarray,
        out_size: tuple[int, ...] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Augment one sample.

        Args:
            patch: ``(C, i, j, k)`` float image patch (possibly :meth:`input_size` large).
            label: ``(i, j, k)`` labels.
            out_size: output spatial size (default: the input's); the input is centre-cropped
                or spatially transformed down to it.

        Returns:
            ``(patch (C, *out_size) float32, label (*out_size))``; label values stay a subset
            of the input's.

        Raises:
            ConfigError: ``out_size`` is larger than the input.
        """
        out_size = tuple(out_size or patch.shape[1:])
        if any(o > s for o, s in zip(out_size, patch.shape[1:], strict=True)):
            raise ConfigError(f"out_size {out_size} exceeds the input patch {patch.shape[1:]}")
        x = np.asarray(patch, dtype=np.float32)
        y = np.asarray(label)
        if not self.config.enabled:
            start = [(s - o) // 2 for s, o in zip(x.shape[1:], out_size, strict=True)]
            sl = tuple(slice(s, s + o) for s, o in zip(start, out_size, strict=True))
            return x[(slice(None), *sl)].copy(), y[sl].copy()
        x, y = self._spatial(x, y, out_size)
        x = self._intensity(np.array(x, dtype=np.float32, copy=True))
        for axis in self.config.mirror_axes:
            if self.rng.random() < self.config.p_mirror:
                x = np.flip(x, axis=axis + 1)
                y = np.flip(y, axis=axis)
        return np.ascontiguousarray(x), np.ascontiguousarray(y)
