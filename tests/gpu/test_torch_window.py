"""The torch back-end's device-side sliding window equals the numpy one (on CPU tensors)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from glioedge.data.sliding_window import sliding_window_predict  # noqa: E402
from glioedge.runtime.backends.torch_window import sliding_window_predict_torch  # noqa: E402


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    # Position-dependent and asymmetric (a 3×3×3 conv, zero-padded), so windows, weights, padding
    # and mirroring all show in the output.
    return torch.nn.Sequential(torch.nn.Conv3d(2, 4, 3, padding=1), torch.nn.Tanh(),
                               torch.nn.Conv3d(4, 3, 1)).eval()


@pytest.mark.parametrize(
    ("shape", "patch", "step", "batch", "mirror", "gaussian"),
    [
        ((2, 20, 17, 9), (8, 8, 8), 0.5, 3, (), True),   # uneven windows, last batch partial
        ((2, 6, 13, 11), (8, 8, 8), 0.5, 2, (0, 2), True),  # smaller than the patch: padded
        ((2, 16, 16, 16), (8, 8, 8), 1.0, 4, (1,), False),  # uniform weights
    ],
)
def test_device_accumulator_equals_numpy(shape: tuple, patch: tuple, step: float, batch: int,
                                         mirror: tuple, gaussian: bool) -> None:
    image = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    net = _net()

    def numpy_fn(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(x)).numpy()

    def torch_fn(x: torch.Tensor) -> torch.Tensor:
        return net(x)

    kw = {"num_classes": 3, "step_size": step, "batch_size": batch, "mirror_axes": mirror,
          "use_gaussian": gaussian}
    expected = sliding_window_predict(image, numpy_fn, patch, **kw)
    with torch.inference_mode():
        got = sliding_window_predict_torch(image, torch_fn, patch, device="cpu", **kw)
    assert got.dtype == torch.float32 and tuple(got.shape) == expected.shape
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_torch_backend_blends_on_the_device_like_the_numpy_path() -> None:
    from glioedge.runtime.backends.torch_backend import TorchBackend

    net = _net()
    backend = TorchBackend(net, "cpu")
    image = np.random.default_rng(2).normal(size=(2, 12, 10, 9)).astype(np.float32)
    seen: dict[str, list[tuple[int, int]]] = {"torch": [], "numpy": []}
    # the same keywords as run_inference passes to either path, progress callback included
    got = backend.sliding_window(image, (8, 8, 8), num_classes=3, batch_size=2, mirror_axes=(0,),
                                 on_progress=lambda d, n: seen["torch"].append((d, n)))
    expected = sliding_window_predict(image, backend.predict, (8, 8, 8), num_classes=3,
                                      batch_size=2, mirror_axes=(0,),
                                      on_progress=lambda d, n: seen["numpy"].append((d, n)))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert seen["torch"] == seen["numpy"] and seen["torch"][-1][0] == seen["torch"][-1][1] > 0
    assert backend.name == "torch-cpu" and not backend.fp16  # FP16 autocast is CUDA-only


@pytest.mark.parametrize(("shape", "batch", "gaussian"),
                         [((2, 20, 17, 9), 3, True), ((2, 6, 13, 11), 2, False)])
def test_device_mirror_disagreement_equals_numpy(shape: tuple, batch: int, gaussian: bool) -> None:
    """The torch back-end's window blends the mirrored predictions' disagreement (issue 19) as the
    numpy window does: the same measure, the same weights; the conv net is not flip-equivariant,
    so it disagrees somewhere."""
    image = np.random.default_rng(3).normal(size=shape).astype(np.float32)
    net = _net()

    def numpy_fn(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(x)).numpy()

    kw = {"num_classes": 3, "batch_size": batch, "mirror_axes": (0, 1, 2), "use_gaussian": gaussian,
          "return_disagreement": True}
    logits, disagreement = sliding_window_predict(image, numpy_fn, (8, 8, 8), **kw)
    with torch.inference_mode():
        got_logits, got = sliding_window_predict_torch(image, net, (8, 8, 8), device="cpu", **kw)
    np.testing.assert_allclose(got_logits.numpy(), logits, rtol=1e-5, atol=1e-6)
    assert tuple(got.shape) == disagreement.shape == shape[1:]
    # a voxel whose averaged logits nearly tie may flip label between float orders: allow a few
    close = np.isclose(got.numpy(), disagreement, atol=1e-5)
    assert close.mean() > 0.999
    assert disagreement.max() > 0


def test_torch_backend_returns_the_disagreement_run_inference_asks_for() -> None:
    from glioedge.runtime.backends.torch_backend import TorchBackend

    backend = TorchBackend(_net(), "cpu")
    image = np.random.default_rng(2).normal(size=(2, 12, 10, 9)).astype(np.float32)
    logits, disagreement = backend.sliding_window(image, (8, 8, 8), num_classes=3, batch_size=2,
                                                  mirror_axes=(0, 1, 2), return_disagreement=True)
    _, expected = sliding_window_predict(image, backend.predict, (8, 8, 8), num_classes=3, batch_size=2,
                                         mirror_axes=(0, 1, 2), return_disagreement=True)
    assert isinstance(disagreement, np.ndarray) and logits.shape == (3, 12, 10, 9)
    assert np.isclose(disagreement, expected, atol=1e-5).mean() > 0.999


@pytest.mark.parametrize("bad", [
    {"image": np.zeros((2, 8, 8), np.float32)},  # an axis short
    {"image": np.zeros((2, 0, 8, 8), np.float32)},  # empty
    {"patch_size": (8, 0, 8)},
    {"step_size": 1.5},
    {"batch_size": 0},
    {"num_classes": 0},
    {"mirror_axes": (3,)},
])
def test_both_windows_refuse_bad_arguments_with_the_same_error(bad: dict) -> None:
    """One plan (``plan_windows``) checks both: the same class and message from either."""
    from glioedge.errors import GlioedgeError

    kw = {"image": np.zeros((2, 8, 8, 8), np.float32), "patch_size": (8, 8, 8), "num_classes": 3,
          **bad}
    image, patch = kw.pop("image"), kw.pop("patch_size")
    with pytest.raises(GlioedgeError) as numpy_error:
        sliding_window_predict(image, lambda x: x, patch, **kw)
    with pytest.raises(GlioedgeError) as torch_error:
        sliding_window_predict_torch(image, lambda x: x, patch, **kw)
    assert type(torch_error.value) is type(numpy_error.value)
    assert str(torch_error.value) == str(numpy_error.value)
