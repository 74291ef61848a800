from __future__ import annotations

import json

import numpy as np
import pytest

from glioedge.data.augment import AugmentConfig, Augmenter
from glioedge.data.sampling import PatchSampler, crop_with_padding, foreground_locations
from glioedge.errors import ConfigError

PATCH = (16, 16, 16)


def _volume() -> tuple[np.ndarray, np.ndarray]:
    label = np.zeros((60, 50, 40), dtype=np.uint8)
    label[40:44, 5:9, 30:33] = 1
    label[44:46, 5:9, 30:33] = 3
    data = np.random.default_rng(0).normal(size=(2, *label.shape)).astype(np.float32)
    return data, label


def test_foreground_locations_per_class() -> None:
    _, label = _volume()
    locs = foreground_locations(label, max_points=10)
    assert set(locs) == {1, 3}
    assert len(locs[1]) == 10
    assert np.all(label[tuple(locs[3].T)] == 3)


def test_oversampling_fraction() -> None:
    data, label = _volume()
    sampler = PatchSampler(PATCH, 0.33, np.random.default_rng(1))
    locs = foreground_locations(label)
    n = 600
    hits = 0
    for _ in range(n):
        x, y = sampler.sample(data, label, locs)
        assert x.shape == (2, *PATCH)
        assert y.shape == PATCH
        hits += bool((y > 0).any())
    # forced foreground in ~33 % (+ random hits); 3 sigma below 0.33 is ~0.27
    assert hits / n >= 0.33 - 3 * np.sqrt(0.33 * 0.67 / n)


def test_force_fg_always_contains_foreground() -> None:
    data, label = _volume()
    sampler = PatchSampler(PATCH, 0.0, np.random.default_rng(2), input_size=(24, 24, 24))
    for _ in range(50):
        x, y = sampler.sample(data, label, force_fg=True)
        assert x.shape == (2, 24, 24, 24)
        assert (y[4:20, 4:20, 4:20] > 0).any()  # inside the central patch


def test_pads_small_volumes() -> None:
    data = np.ones((1, 5, 20, 6), dtype=np.float32)
    label = np.ones((5, 20, 6), dtype=np.uint8)
    x, y = PatchSampler(PATCH, 0.5, np.random.default_rng(0)).sample(data, label)
    assert x.shape == (1, *PATCH)
    assert x.sum() == 5 * 16 * 6  # all of axes 0 and 2, 16 of axis 1
    assert y.sum() == 5 * 16 * 6


def test_crop_with_padding_offsets() -> None:
    a = np.arange(27).reshape(3, 3, 3)
    out = crop_with_padding(a, (-1, 0, 2), (3, 3, 3), fill=-1)
    assert out[0].max() == -1
    assert np.array_equal(out[1:, :, 0], a[:2, :, 2])
    assert np.all(out[:, :, 1:] == -1)


def test_sampler_validates() -> None:
    with pytest.raises(ConfigError):
        PatchSampler((16, 16), 0.3, np.random.default_rng())  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        PatchSampler(PATCH, 1.5, np.random.default_rng())


def _patch(seed: int = 0, size: tuple[int, ...] = (24, 24, 24)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, *size)).astype(np.float32)
    y = rng.integers(0, 4, size=size).astype(np.uint8)
    return x, y


def test_augment_config_round_trip() -> None:
    c = AugmentConfig(p_elastic=0.1, scale_range=(0.9, 1.1))
    assert AugmentConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    with pytest.raises(ConfigError, match="bogus"):
        AugmentConfig.from_dict({"bogus": 1})
    with pytest.raises(ConfigError, match="p_noise"):
        AugmentConfig(p_noise=2.0)


def test_augment_shapes_labels_determinism() -> None:
    cfg = AugmentConfig(p_rotation=1.0, p_scale=1.0, p_elastic=0.3, p_noise=0.5, p_blur=0.5,
                        p_gamma=0.5, p_gamma_inverted=0.3, p_contrast=0.5, p_brightness=0.5)
    x, y = _patch()
    for seed in range(5):
        a = Augmenter(cfg, np.random.default_rng(seed))
        b = Augmenter(cfg, np.random.default_rng(seed))
        xa, ya = a(x, y, PATCH)
        xb, yb = b(x, y, PATCH)
        assert xa.shape == (2, *PATCH)
        assert xa.dtype == np.float32
        assert ya.shape == PATCH
        assert set(np.unique(ya).tolist()) <= {0, 1, 2, 3}
        assert np.array_equal(xa, xb)
        assert np.array_equal(ya, yb)
    assert np.array_equal(x, _patch()[0])  # input untouched


def test_mirroring_keeps_image_and_label_aligned() -> None:
    only_mirror = AugmentConfig(p_rotation=0, p_scale=0, p_noise=0, p_blur=0, p_brightness=0,
                                p_contrast=0, p_gamma=0, p_gamma_inverted=0, p_mirror=0.5)
    _, y = _patch(1, PATCH)
    x = np.stack([y.astype(np.float32) * 10, y.astype(np.float32)])
    flipped_any = False
    for seed in range(8):
        xa, ya = Augmenter(only_mirror, np.random.default_rng(seed))(x, y)
        assert np.array_equal(xa[0], ya.astype(np.float32) * 10)
        flipped_any |= not np.array_equal(ya, y)
    assert flipped_any


def test_rotation_keeps_image_and_label_aligned() -> None:
    cfg = AugmentConfig(p_rotation=1, p_scale=1, p_noise=0, p_blur=0, p_brightness=0,
                        p_contrast=0, p_gamma=0, p_gamma_inverted=0, p_mirror=0)
    y = np.zeros((24, 24, 24), dtype=np.uint8)
    y[6:18, 8:16, 10:14] = 2
    x = (y > 0).astype(np.float32)[None]
    xa, ya = Augmenter(cfg, np.random.default_rng(0))(x, y, PATCH)
    assert np.mean((xa[0] > 0.5) == (ya > 0)) > 0.97


def test_disabled_is_centre_crop() -> None:
    x, y = _patch()
    xa, ya = Augmenter(AugmentConfig(enabled=False), np.random.default_rng())(x, y, PATCH)
    assert np.array_equal(xa, x[:, 4:20, 4:20, 4:20])
    assert np.array_equal(ya, y[4:20, 4:20, 4:20])


def test_input_size_covers_rotation() -> None:
    a = Augmenter(AugmentConfig(), np.random.default_rng())
    size = a.input_size((64, 64, 64))
    assert all(s >= 64 * 1.2 for s in size)
    assert Augmenter(AugmentConfig(p_rotation=0, p_scale=0), np.random.default_rng()).input_size(
        (64, 64, 64)) == (64, 64, 64)
