"""Tests of glioedge.data.sliding_window (nnU-Net-style sliding-window inference, numpy only)."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from glioedge.data.sliding_window import (
    compute_window_starts,
    count_windows,
    gaussian_importance_map,
    pad_to_min_shape,
    sliding_window_predict,
    window_slices,
)
from glioedge.errors import BackendError, ConfigError, InputError


def _identity(x: np.ndarray) -> np.ndarray:
    return x.copy()


def _image(shape: tuple[int, ...], channels: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((channels, *shape)).astype(np.float32)


# ----------------------------------------------------------------------------- window starts


@pytest.mark.parametrize(
    ("image", "patch", "step", "expected"),
    [
        (240, 128, 0.5, [0, 56, 112]),
        (128, 128, 0.5, [0]),
        (155, 128, 0.5, [0, 27]),
        (110, 64, 0.5, [0, 23, 46]),  # nnU-Net's own example
        (129, 64, 0.5, [0, 22, 43, 65]),  # 65/3 = 21.67 per step
        (240, 128, 1.0, [0, 112]),
        (240, 128, 0.25, [0, 28, 56, 84, 112]),
        (13, 8, 0.5, [0, 2, 5]),  # 2.5 rounds half to even, as np.round in nnU-Net
    ],
)
def test_window_starts_match_nnunet(image: int, patch: int, step: float, expected: list[int]) -> None:
    assert compute_window_starts((image,), (patch,), step) == [expected]


def test_window_starts_per_axis_and_count() -> None:
    starts = compute_window_starts((240, 240, 155), (128, 128, 128), 0.5)
    assert starts == [[0, 56, 112], [0, 56, 112], [0, 27]]
    assert count_windows((240, 240, 155), (128, 128, 128)) == 18
    assert count_windows((100, 60, 155), (128, 128, 128)) == 2  # padded to (128, 128, 155)
    assert len(window_slices((240, 240, 155), (128, 128, 128))) == 18


@pytest.mark.parametrize(
    ("image", "patch", "step"),
    [((240, 240, 155), (128, 128, 128), 0.5), ((37, 50, 19), (16, 24, 19), 0.7), ((9, 9), (4, 3), 1.0)],
)
def test_every_voxel_is_covered(image: tuple[int, ...], patch: tuple[int, ...], step: float) -> None:
    covered = np.zeros(image, dtype=np.int32)
    for sl in window_slices(image, patch, step):
        assert all(s.stop - s.start == p for s, p in zip(sl, patch, strict=True))
        covered[sl] += 1
    assert covered.min() >= 1
    for axis_starts, size, p in zip(compute_window_starts(image, patch, step), image, patch, strict=True):
        assert axis_starts[0] == 0
        assert axis_starts[-1] == size - p
        assert np.all(np.diff(axis_starts) <= p * step + 1)


def test_window_start_errors() -> None:
    with pytest.raises(InputError, match="at least the patch"):
        compute_window_starts((100, 200), (128, 128))
    with pytest.raises(InputError, match="axis counts"):
        compute_window_starts((200, 200), (128, 128, 128))
    for bad in (0.0, 1.5, -0.5):
        with pytest.raises(ConfigError, match="step_size"):
            compute_window_starts((200,), (128,), bad)
    with pytest.raises(ConfigError, match="patch_size"):
        compute_window_starts((200,), (0,))


# ----------------------------------------------------------------------------- gaussian


@pytest.mark.parametrize("patch", [(9, 11, 7), (8, 12, 6), (128, 128, 128), (5, 32)])
def test_gaussian_map_shape_symmetry_and_positivity(patch: tuple[int, ...]) -> None:
    g = gaussian_importance_map(patch)
    assert g.shape == patch
    assert g.dtype == np.float32
    centre = tuple(p // 2 for p in patch)
    assert g[centre] == 1.0
    assert g.max() == 1.0
    assert np.unravel_index(np.argmax(g), patch) == centre
    assert g.min() > 0
    for axis, p in enumerate(patch):
        # symmetric about p // 2 (for even p index 0 has no mirror partner)
        part = np.take(g, np.arange(p - (1 - p % 2), dtype=int) + (1 - p % 2), axis=axis)
        np.testing.assert_array_equal(part, np.flip(part, axis=axis))


def test_gaussian_map_matches_nnunet_compute_gaussian() -> None:
    """nnU-Net v2 ``compute_gaussian``: gaussian_filter of a centred impulse / max · factor."""
    for patch in [(12, 9, 16), (20, 20, 20), (64, 48, 40)]:
        impulse = np.zeros(patch)
        impulse[tuple(p // 2 for p in patch)] = 1
        ref = gaussian_filter(impulse, [p / 8 for p in patch], 0, mode="constant", cval=0)
        ref = ref / ref.max() * 10
        ref[ref == 0] = ref[ref != 0].min()
        got = gaussian_importance_map(patch, dtype=np.float64, value_scaling_factor=10)
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)


def test_gaussian_map_is_a_fresh_copy() -> None:
    g = gaussian_importance_map((6, 6, 6))
    g[:] = 0
    assert gaussian_importance_map((6, 6, 6)).min() > 0


def test_gaussian_map_float16_has_no_zeros() -> None:
    # float16 underflows far from the centre; zeros are replaced by the smallest non-zero value.
    g = gaussian_importance_map((256, 8), sigma_scale=1 / 32, dtype=np.float16)
    assert g.min() > 0


# ----------------------------------------------------------------------------- padding


def test_pad_to_min_shape_splits_like_pad_nd_image() -> None:
    x = np.arange(2 * 5 * 7, dtype=np.float32).reshape(2, 5, 7)
    padded, slicer = pad_to_min_shape(x, (8, 6))
    assert padded.shape == (2, 8, 7)  # never cropped
    np.testing.assert_array_equal(padded[slicer], x)
    assert slicer[1] == slice(1, 6)  # 3 voxels: 1 below, 2 above
    assert padded[:, 0].sum() == 0
    assert padded[:, 6:].sum() == 0
    same, slicer = pad_to_min_shape(x, (5, 7))
    assert same is x


# ----------------------------------------------------------------------------- prediction


@pytest.mark.parametrize("use_gaussian", [True, False])
@pytest.mark.parametrize(
    ("shape", "patch"),
    [
        ((30, 26, 21), (16, 16, 16)),
        ((10, 26, 7), (16, 16, 16)),  # smaller than the patch on two axes: padded and cropped
        ((16, 16, 16), (16, 16, 16)),
    ],
)
def test_identity_reconstructs_input(
    shape: tuple[int, ...], patch: tuple[int, ...], use_gaussian: bool
) -> None:
    img = _image(shape)
    out = sliding_window_predict(
        img, _identity, patch, num_classes=2, use_gaussian=use_gaussian, batch_size=3
    )
    assert out.shape == img.shape
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, img, atol=1e-5, rtol=0)


@pytest.mark.parametrize("mirror_axes", [(0,), (1, 2), (0, 1, 2)])
def test_identity_with_mirroring(mirror_axes: tuple[int, ...]) -> None:
    img = _image((20, 13, 18), channels=3)
    calls: list[int] = []

    def fn(x: np.ndarray) -> np.ndarray:
        calls.append(x.shape[0])
        return x * 1.0

    out = sliding_window_predict(img, fn, (12, 16, 12), num_classes=3, mirror_axes=mirror_axes, batch_size=4)
    np.testing.assert_allclose(out, img, atol=1e-5, rtol=0)
    n_windows = count_windows((20, 13, 18), (12, 16, 12))
    assert sum(calls) == n_windows * 2 ** len(mirror_axes)


def test_mirroring_averages_flipped_predictions() -> None:
    """A position-dependent fn (not flip-equivariant) shows the flip / flip-back average."""
    patch = (6, 5, 4)
    ramp = np.arange(np.prod(patch), dtype=np.float32).reshape(patch)

    def fn(x: np.ndarray) -> np.ndarray:
        return np.broadcast_to(ramp, (x.shape[0], 1, *patch)).copy()

    img = _image(patch, channels=1)
    out = sliding_window_predict(img, fn, patch, num_classes=1, mirror_axes=(0, 2))
    expected = np.mean([np.flip(ramp, axes) for axes in [(), (0,), (2,), (0, 2)]], axis=0)
    np.testing.assert_allclose(out[0], expected, rtol=1e-6)


def test_per_voxel_linear_map_equals_whole_image() -> None:
    rng = np.random.default_rng(3)
    W = rng.standard_normal((4, 2)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)

    def linear(x: np.ndarray) -> np.ndarray:
        return np.einsum("kc,bc...->bk...", W, x) + b.reshape(1, 4, 1, 1, 1)

    img = _image((33, 20, 27))
    expected = np.einsum("kc,c...->k...", W, img) + b.reshape(4, 1, 1, 1)
    out = sliding_window_predict(img, linear, (16, 24, 16), num_classes=4, mirror_axes=(0, 1))
    np.testing.assert_allclose(out, expected, atol=2e-5, rtol=1e-5)


def test_gaussian_weighting_matches_brute_force() -> None:
    """Each window returns its own index; the result is the weighted mean of covering indices."""
    shape, patch = (20, 14, 9), (8, 8, 6)
    slices = window_slices(shape, patch)
    counter = itertools.count()

    def fn(x: np.ndarray) -> np.ndarray:
        return np.stack([np.full((1, *patch), float(next(counter)), np.float32) for _ in range(x.shape[0])])

    out = sliding_window_predict(
        _image(shape, 1), fn, patch, num_classes=1, batch_size=3, accumulate_dtype=np.float64
    )
    g = gaussian_importance_map(patch, dtype=np.float64)
    num = np.zeros(shape)
    den = np.zeros(shape)
    for index, sl in enumerate(slices):
        num[sl] += index * g
        den[sl] += g
    np.testing.assert_allclose(out[0], num / den, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_size_does_not_change_result(dtype: type) -> None:
    rng = np.random.default_rng(5)
    W = rng.standard_normal((3, 2)).astype(np.float32)

    def fn(x: np.ndarray) -> np.ndarray:
        return np.tanh(np.einsum("kc,bc...->bk...", W, x))

    img = _image((30, 22, 17))
    results = [
        sliding_window_predict(img, fn, (12, 12, 12), num_classes=3, batch_size=bs, accumulate_dtype=dtype)
        for bs in (1, 2, 5, 64)
    ]
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], rtol=0, atol=1e-6)
        if dtype is np.float64:
            np.testing.assert_array_equal(r, results[0])


def test_predict_fn_receives_float32_batches_within_batch_size() -> None:
    seen: list[tuple[tuple[int, ...], np.dtype]] = []

    def fn(x: np.ndarray) -> np.ndarray:
        seen.append((x.shape, x.dtype))
        return np.zeros((x.shape[0], 2, *x.shape[2:]), np.float32)

    img = np.ones((1, 24, 20, 16), dtype=np.float64)
    out = sliding_window_predict(img, fn, (16, 16, 16), num_classes=2, batch_size=2)
    assert out.shape == (2, 24, 20, 16)
    assert all(dt == np.float32 for _, dt in seen)
    assert all(1 <= s[0] <= 2 and s[1:] == (1, 16, 16, 16) for s, _ in seen)
    assert sum(s[0] for s, _ in seen) == count_windows((24, 20, 16), (16, 16, 16))


def test_sliding_window_errors() -> None:
    img = _image((16, 16, 16))
    with pytest.raises(BackendError, match="expected"):
        sliding_window_predict(img, _identity, (8, 8, 8), num_classes=3)
    with pytest.raises(InputError, match="spatial axes"):
        sliding_window_predict(img[0], _identity, (8, 8, 8), num_classes=2)
    with pytest.raises(ConfigError, match="mirror_axes"):
        sliding_window_predict(img, _identity, (8, 8, 8), num_classes=2, mirror_axes=(3,))
    with pytest.raises(ConfigError, match="accumulate_dtype"):
        sliding_window_predict(img, _identity, (8, 8, 8), num_classes=2, accumulate_dtype=np.float16)
    with pytest.raises(ConfigError, match="batch_size"):
        sliding_window_predict(img, _identity, (8, 8, 8), num_classes=2, batch_size=0)


def test_module_does_not_import_torch() -> None:
    code = "import sys, glioedge.data.sliding_window; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the mirrored predictions' disagreement (issue 19) -------------------------------------------
MIRROR_ALL = (0, 1, 2)


def _pointwise(x: np.ndarray) -> np.ndarray:
    """Logits that depend on each voxel's own channels only: flip-equivariant by construction."""
    w = np.array([[1.0, -0.5], [-1.0, 2.0], [0.3, 0.7]], np.float32)  # (K=3, C=2)
    return np.einsum("kc,bc...->bk...", w, x)


def _position_dependent(x: np.ndarray) -> np.ndarray:
    """The same logits plus a ramp along the patch's first axis on class 1: a flipped window
    sees the ramp reversed, so mirrored predictions disagree near the class boundaries."""
    y = _pointwise(x)
    ramp = np.linspace(-2.0, 2.0, x.shape[2], dtype=np.float32)[:, None, None]
    y[:, 1] += ramp
    return y


def test_equivariant_network_has_no_mirror_disagreement() -> None:
    img = _image((20, 13, 18), channels=2)
    logits, disagreement = sliding_window_predict(img, _pointwise, (12, 8, 12), num_classes=3,
                                                  mirror_axes=MIRROR_ALL, return_disagreement=True)
    assert disagreement.shape == img.shape[1:] and disagreement.dtype == np.float32
    assert float(np.abs(disagreement).max()) == 0.0
    # the prediction itself is the one the window returns without the disagreement
    plain = sliding_window_predict(img, _pointwise, (12, 8, 12), num_classes=3, mirror_axes=MIRROR_ALL)
    np.testing.assert_array_equal(logits, plain)


def test_disagreement_of_one_window_is_the_share_of_flips_that_relabel() -> None:
    """One window covering the image: the blended disagreement is exactly the share of the 8 flips
    whose argmax differs from the argmax of their average (the weight cancels)."""
    patch = (10, 9, 8)
    img = _image(patch, channels=2)
    _, disagreement = sliding_window_predict(img, _position_dependent, patch, num_classes=3,
                                             mirror_axes=MIRROR_ALL, return_disagreement=True)
    combos = [c for r in range(4) for c in itertools.combinations(range(3), r)]
    preds = [np.flip(_position_dependent(np.flip(img[None], [a + 2 for a in c]).copy()),
                     [a + 2 for a in c])[0] for c in combos]
    mean_label = np.mean(preds, axis=0).argmax(axis=0)
    expected = np.mean([p.argmax(axis=0) != mean_label for p in preds], axis=0)
    np.testing.assert_allclose(disagreement, expected, atol=1e-6)
    assert disagreement.max() > 0  # the ramp makes the flips disagree somewhere
    assert disagreement.max() <= 1.0


def test_non_equivariant_network_disagrees_and_batching_does_not_change_it() -> None:
    img = _image((26, 17, 15), channels=2)
    kw = {"num_classes": 3, "mirror_axes": MIRROR_ALL, "return_disagreement": True}
    _, one = sliding_window_predict(img, _position_dependent, (12, 8, 8), batch_size=1, **kw)
    _, many = sliding_window_predict(img, _position_dependent, (12, 8, 8), batch_size=5, **kw)
    assert one.mean() > 0.01 and (one >= 0).all() and (one <= 1 + 1e-6).all()
    np.testing.assert_allclose(one, many, atol=1e-6)


def test_disagreement_needs_mirroring() -> None:
    with pytest.raises(ConfigError, match="needs mirroring"):
        sliding_window_predict(_image((8, 8, 8)), _identity, (8, 8, 8), num_classes=2,
                               return_disagreement=True)
