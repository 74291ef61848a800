"""ONNX Runtime on a GPU, decided from what a (fake) session reports with ``get_providers()``:
every onnxruntime-gpu wheel lists the TensorRT provider, initialised or not."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from glioedge.errors import BackendError
from glioedge.runtime.backends.ort_backend import OrtBackend
from glioedge.runtime.backends.ort_providers import (
    CPU_EP,
    CUDA_EP,
    TRT_EP,
    brain_mask_providers,
)

LISTED = [TRT_EP, CUDA_EP, CPU_EP]  # what onnxruntime-gpu's get_available_providers() says


class FakeSession:
    def __init__(self, providers: list[str]) -> None:
        self._providers = providers

    def get_providers(self) -> list[str]:
        return list(self._providers)


class Factory:
    """Opens fake sessions; ``active`` says which of the asked providers initialise."""

    def __init__(self, active: set[str], available: list[str] = LISTED) -> None:
        self.active = active
        self.available = available
        self.opened: list[tuple[str, list[Any]]] = []

    def __call__(self, model: Path, providers: list[Any]) -> FakeSession:
        self.opened.append((model.name, providers))
        names = [p if isinstance(p, str) else p[0] for p in providers]
        return FakeSession([n for n in names if n in self.active or n == CPU_EP])


def fake_bundle(root: Path, fp16: bool = True) -> Any:
    root.mkdir(parents=True, exist_ok=True)
    manifest = SimpleNamespace(input_name="image", output_name="logits", modalities=("flair", "t1ce"),
                               patch_size=(32, 32, 32), bundle_id="b123")
    return SimpleNamespace(manifest=manifest, root=root, model_path=root / "model.onnx",
                           fp16_model_path=root / "model.fp16.onnx" if fp16 else None)


def _opts(providers: list[Any], name: str) -> dict[str, Any]:
    return next(p[1] for p in providers if not isinstance(p, str) and p[0] == name)


def test_tensorrt_provider_gets_the_fp16_model_strongly_typed_with_a_profile_and_caches(
    tmp_path: Path,
) -> None:
    make = Factory(active={TRT_EP, CUDA_EP})
    backend = OrtBackend.from_bundle(fake_bundle(tmp_path / "bundle"), "cuda:1", batch_size=3, make=make)
    ((model, providers),) = make.opened
    assert model == "model.fp16.onnx" and backend.name == "onnxruntime-tensorrt-fp16"
    trt = _opts(providers, TRT_EP)
    assert trt["device_id"] == 1 and trt["trt_fp16_enable"] is False
    assert trt["trt_profile_min_shapes"] == "image:1x2x32x32x32"
    assert trt["trt_profile_opt_shapes"] == "image:3x2x32x32x32"
    assert trt["trt_profile_max_shapes"] == "image:4x2x32x32x32"
    cache = tmp_path / ".glioedge-cache" / "b123" / "ort-trt"
    assert trt["trt_engine_cache_path"] == trt["trt_timing_cache_path"] == str(cache)
    assert trt["trt_engine_cache_enable"] and trt["trt_timing_cache_enable"] and cache.is_dir()
    cuda = _opts(providers, CUDA_EP)
    assert cuda == {"device_id": 1, "cudnn_conv_algo_search": "EXHAUSTIVE"}


def test_listed_tensorrt_that_does_not_initialise_leaves_cuda_with_the_fp16_model(tmp_path: Path) -> None:
    make = Factory(active={CUDA_EP})
    backend = OrtBackend.from_bundle(fake_bundle(tmp_path / "b"), None, make=make)
    assert [m for m, _ in make.opened] == ["model.fp16.onnx"]
    assert backend.name == "onnxruntime-cuda-fp16" and backend.model_path.name == "model.fp16.onnx"


def test_no_gpu_provider_initialising_reopens_the_fp32_model_on_the_cpu(tmp_path: Path) -> None:
    make = Factory(active=set())
    backend = OrtBackend.from_bundle(fake_bundle(tmp_path / "b"), None, make=make)
    assert [m for m, _ in make.opened] == ["model.fp16.onnx", "model.onnx"]
    assert make.opened[1][1] == [CPU_EP]
    assert backend.name == "onnxruntime-cpu" and backend.model_path.name == "model.onnx"


def test_an_explicit_cuda_device_is_not_silently_served_by_the_cpu(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="no GPU provider of onnxruntime initialised"):
        OrtBackend.from_bundle(fake_bundle(tmp_path / "b"), "cuda", make=Factory(active=set()))


def test_cpu_device_runs_the_fp32_model_and_makes_no_cache(tmp_path: Path) -> None:
    make = Factory(active={TRT_EP, CUDA_EP})
    backend = OrtBackend.from_bundle(fake_bundle(tmp_path / "b"), "cpu", make=make)
    assert make.opened == [("model.onnx", [CPU_EP])] and backend.name == "onnxruntime-cpu"
    assert not (tmp_path / ".glioedge-cache").exists()


def test_cpu_only_onnxruntime_refuses_a_cuda_device(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="onnxruntime-gpu"):
        OrtBackend.from_bundle(fake_bundle(tmp_path / "b"), "cuda:0",
                               make=Factory(active=set(), available=[CPU_EP]))


def test_brain_mask_providers_follow_the_device() -> None:
    assert brain_mask_providers(LISTED, "cpu") == [CPU_EP]
    assert brain_mask_providers(LISTED, None) == [
        (CUDA_EP, {"device_id": 0, "cudnn_conv_algo_search": "HEURISTIC"}), CPU_EP]
    assert brain_mask_providers(LISTED, "cuda:2")[0][1]["device_id"] == 2
    assert brain_mask_providers([CPU_EP], None) == [CPU_EP]
    with pytest.raises(BackendError, match="onnxruntime-gpu"):
        brain_mask_providers([CPU_EP], "cuda")


def test_brain_mask_model_honours_the_requested_device(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from glioedge.runtime.skullstrip import BrainMaskModel
    from tests.skullstrip.conftest import FAKE_SPEC, write_fake_model

    path = write_fake_model(tmp_path / "bm.onnx")
    assert BrainMaskModel(path, FAKE_SPEC, device="cpu").providers == (CPU_EP,)
    import onnxruntime

    if CUDA_EP not in onnxruntime.get_available_providers():
        with pytest.raises(BackendError, match="onnxruntime-gpu"):
            BrainMaskModel(path, FAKE_SPEC, device="cuda")
