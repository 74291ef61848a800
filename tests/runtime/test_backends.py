"""Back-ends agree with each other, and a missing one says what to install."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glioedge.bundle import Bundle
from glioedge.errors import BackendError, ConfigError, ModelError
from glioedge.runtime import backends as B
from glioedge.runtime.backends.ort_backend import CPU_EP, CUDA_EP, TRT_EP, choose_providers


def _batch(bundle: Bundle, n: int = 2, seed: int = 0) -> np.ndarray:
    c, ps = len(bundle.manifest.modalities), bundle.manifest.patch_size
    return np.random.default_rng(seed).standard_normal((n, c, *ps)).astype(np.float32)


def test_ort_cpu_matches_torch(trained_bundle: Path, trained_checkpoint: Path) -> None:
    bundle = Bundle.load(trained_bundle)
    ort = B.select_backend(bundle, "onnxruntime", "cpu")
    ref = B.select_backend(bundle, "torch", "cpu", checkpoint=trained_checkpoint)
    x = _batch(bundle)
    a, b = ort.predict(x), ref.predict(x)
    assert a.shape == b.shape == (2, 4, *bundle.manifest.patch_size)
    assert a.dtype == np.float32
    assert float(np.abs(a - b).max()) < 1e-3
    assert ort.name == "onnxruntime-cpu" and ref.name == "torch-cpu"
    ort.close()
    ref.close()


def test_auto_picks_best_available_and_logs(trained_bundle: Path, caplog: pytest.LogCaptureFixture) -> None:
    bundle = Bundle.load(trained_bundle)
    with caplog.at_level("INFO", logger="glioedge.runtime"):
        backend = B.select_backend(bundle, "auto")
    expected = "tensorrt" if B.tensorrt_reason() is None else "onnxruntime"
    assert backend.name.startswith(expected)
    assert "inference backend:" in caplog.text


def test_missing_tensorrt_names_package(trained_bundle: Path) -> None:
    if B.tensorrt_reason() is None:
        pytest.skip("TensorRT is usable here")
    with pytest.raises(BackendError, match="pip install tensorrt"):
        B.select_backend(Bundle.load(trained_bundle), "tensorrt")


def test_missing_onnxruntime_names_package(trained_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(B, "_ort_providers", lambda: None)
    with pytest.raises(BackendError, match="pip install onnxruntime"):
        B.select_backend(Bundle.load(trained_bundle), "onnxruntime")


def test_auto_without_any_backend(trained_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(B, "_ort_providers", lambda: None)
    monkeypatch.setattr(B, "tensorrt_reason", lambda device=None: "no GPU")
    with pytest.raises(BackendError, match=r"no inference backend is available.*onnxruntime"):
        B.select_backend(Bundle.load(trained_bundle), "auto")


def test_missing_torch_names_package(trained_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(B, "_torch_available", lambda: False)
    with pytest.raises(BackendError, match=r"glioedge\[train\]"):
        B.select_backend(Bundle.load(trained_bundle), "torch", checkpoint=Path("x"))


def test_torch_needs_checkpoint(trained_bundle: Path) -> None:
    pytest.importorskip("torch")
    with pytest.raises(BackendError, match="checkpoint"):
        B.select_backend(Bundle.load(trained_bundle), "torch")


def test_torch_rejects_foreign_checkpoint(trained_bundle: Path, tmp_path: Path) -> None:
    from .conftest import make_tiny_checkpoint

    other = make_tiny_checkpoint(tmp_path / "other", seed=1)
    with pytest.raises(ModelError, match="differ"):
        B.select_backend(Bundle.load(trained_bundle), "torch", "cpu", checkpoint=other)


def test_unknown_backend_lists_valid() -> None:
    with pytest.raises(ConfigError, match="onnxruntime"):
        B._name("openvino")


def test_tensorrt_on_cpu_device_refused(trained_bundle: Path) -> None:
    with pytest.raises(BackendError, match="GPU"):
        B.select_backend(Bundle.load(trained_bundle), "tensorrt", "cpu")


@pytest.mark.parametrize(
    "available, device, first, fp16",
    [
        ([CPU_EP], None, CPU_EP, False),
        ([CUDA_EP, CPU_EP], None, CUDA_EP, True),
        ([CUDA_EP, CPU_EP], "cpu", CPU_EP, False),
        ([TRT_EP, CUDA_EP, CPU_EP], "cuda:1", TRT_EP, True),
    ],
)
def test_provider_choice(available: list[str], device: str | None, first: str, fp16: bool) -> None:
    providers, use_fp16 = choose_providers(available, device)
    head = providers[0] if isinstance(providers[0], str) else providers[0][0]
    assert head == first and use_fp16 is fp16 and providers[-1] == CPU_EP
    if device == "cuda:1":
        assert providers[0][1]["device_id"] == 1


def test_gpu_requested_without_gpu_provider() -> None:
    with pytest.raises(BackendError, match="onnxruntime-gpu"):
        choose_providers([CPU_EP], "cuda")


@pytest.mark.tensorrt
def test_tensorrt_matches_ort(trained_bundle: Path, tmp_path: Path) -> None:
    if (reason := B.tensorrt_reason()) is not None:
        pytest.skip(f"TensorRT backend unavailable: {reason}")
    bundle = Bundle.load(trained_bundle)
    trt = B.select_backend(bundle, "tensorrt", cache_dir=tmp_path)
    ort = B.select_backend(bundle, "onnxruntime", "cpu")
    x = _batch(bundle, n=3)
    a, b = trt.predict(x), ort.predict(x)
    assert np.mean(a.argmax(1) == b.argmax(1)) >= 0.999
    trt.close()
