"""ONNX Runtime on a GPU, decided from what a (fake) session reports with ``get_providers()``:
every onnxruntime-gpu wheel lists the TensorRT provider, initialised or not."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from glioedge.errors import BackendError
from glioedge.runtime.backends import ort_providers
from glioedge.runtime.backends.ort_backend import OrtBackend, _session_factory
from glioedge.runtime.backends.ort_providers import (
    CPU_EP,
    CUDA_EP,
    TRT_EP,
    brain_mask_providers,
)

LISTED = [TRT_EP, CUDA_EP, CPU_EP]  # what onnxruntime-gpu's get_available_providers() says


class FakeSession:
    """Reports providers and their options as ONNX Runtime does (option values as strings)."""

    def __init__(self, providers: list[str], options: dict[str, dict[str, str]] | None = None) -> None:
        self._providers = providers
        self._options = options or {}

    def get_providers(self) -> list[str]:
        return list(self._providers)

    def get_provider_options(self) -> dict[str, dict[str, str]]:
        return {p: dict(self._options.get(p, {})) for p in self._providers}


class Factory:
    """Opens fake sessions; ``active`` says which of the asked providers initialise."""

    def __init__(self, active: set[str], available: list[str] = LISTED) -> None:
        self.active = active
        self.available = available
        self.opened: list[tuple[str, list[Any]]] = []

    def __call__(self, model: Path, providers: list[Any]) -> FakeSession:
        self.opened.append((model.name, providers))
        names = [p if isinstance(p, str) else p[0] for p in providers]
        options = {p[0]: {k: str(v) for k, v in p[1].items()} for p in providers if not isinstance(p, str)}
        return FakeSession([n for n in names if n in self.active or n == CPU_EP], options)


@pytest.fixture(autouse=True)
def tensorrt_library_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a box with TensorRT installed (no libnvinfer here); a test may say otherwise."""
    monkeypatch.setattr(ort_providers, "tensorrt_provider_loads", lambda: True, raising=False)


def fake_bundle(root: Path, fp16: bool = True) -> Any:
    root.mkdir(parents=True, exist_ok=True)
    manifest = SimpleNamespace(input_name="image", output_name="logits", modalities=("flair", "t1ce"),
                               patch_size=(32, 32, 32), bundle_id="b123",
                               files={"model.onnx": "a" * 64, "model.fp16.onnx": "b" * 64})
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


# ------------------------------------------------------------------ issue 23 items 10 and 1 (ORT)
def test_tensorrt_provider_is_not_asked_for_when_libnvinfer_does_not_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ort_providers, "tensorrt_provider_loads", lambda: False)
    make = Factory(active={TRT_EP, CUDA_EP})
    backend = OrtBackend.from_bundle(fake_bundle(tmp_path / "b"), "cuda:1", make=make)
    ((_, providers),) = make.opened
    assert [p if isinstance(p, str) else p[0] for p in providers] == [CUDA_EP, CPU_EP]
    assert providers[0][1]["device_id"] == 1 and backend.name == "onnxruntime-cuda-fp16"


class DroppedOptions(Factory):
    """What ONNX Runtime's own fallback does: CUDA + CPU again, without the options (GPU 0)."""

    def __call__(self, model: Path, providers: list[Any]) -> FakeSession:
        self.opened.append((model.name, providers))
        return FakeSession([CUDA_EP, CPU_EP], {CUDA_EP: {"device_id": "0"}})


def test_a_session_on_another_gpu_than_asked_for_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"device_id '0', but 1 was asked for"):
        OrtBackend.from_bundle(fake_bundle(tmp_path / "b"), "cuda:1", make=DroppedOptions(active=set()))


class TrtFails(Factory):
    def __call__(self, model: Path, providers: list[Any]) -> FakeSession:
        if any(not isinstance(p, str) and p[0] == TRT_EP for p in providers):
            self.opened.append((model.name, providers))
            raise BackendError("onnxruntime cannot load model.fp16.onnx: TensorRT EP failed")
        return super().__call__(model, providers)


def test_a_failing_tensorrt_provider_is_retried_without_it_keeping_the_device(tmp_path: Path) -> None:
    make = TrtFails(active={CUDA_EP})
    backend = OrtBackend.from_bundle(fake_bundle(tmp_path / "b"), "cuda:1", make=make)
    assert len(make.opened) == 2
    _, retry = make.opened[1]
    assert retry[0] == (CUDA_EP, {"device_id": 1, "cudnn_conv_algo_search": "EXHAUSTIVE"})
    assert backend.name == "onnxruntime-cuda-fp16"


def _relu_model(path: Path) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["X"], ["Y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_real_onnxruntime_fallback_drops_options_and_glioedge_turns_it_off(tmp_path: Path) -> None:
    """The real onnxruntime: a provider that fails at session creation makes
    ``InferenceSession`` retry with its fallback list and no options; glioedge's sessions do not."""
    ort = pytest.importorskip("onnxruntime")
    model = _relu_model(tmp_path / "relu.onnx")
    asked = ["NoSuchExecutionProvider", (CPU_EP, {"intra_op_num_threads": "1"})]
    with pytest.warns(UserWarning):
        silent = ort.InferenceSession(str(model), providers=asked)  # ORT's default
    assert silent.get_providers() == [CPU_EP]  # served anyway, on its fallback list
    with pytest.warns(UserWarning), pytest.raises(BackendError, match="NoSuchExecutionProvider"):
        _session_factory(None)(model, asked)


def test_ort_tensorrt_cache_is_recorded_and_a_swapped_engine_clears_it(tmp_path: Path) -> None:
    bundle = fake_bundle(tmp_path / "b")
    cache = tmp_path / ".glioedge-cache" / "b123" / "ort-trt"

    class BuildsEngine(Factory):
        def __call__(self, model: Path, providers: list[Any]) -> FakeSession:
            (cache / "TensorrtExecutionProvider_TRTKernel_graph_1_fp16.engine").write_bytes(b"ort engine")
            return super().__call__(model, providers)

    OrtBackend.from_bundle(bundle, "cuda", make=BuildsEngine(active={TRT_EP, CUDA_EP}))
    assert (cache / "glioedge-trust.json").is_file()  # engine_trust.FOLDER_RECORD
    engine = cache / "TensorrtExecutionProvider_TRTKernel_graph_1_fp16.engine"
    OrtBackend.from_bundle(bundle, "cuda", make=Factory(active={TRT_EP, CUDA_EP}))
    assert engine.read_bytes() == b"ort engine"  # trusted: kept
    engine.write_bytes(b"swapped")  # someone who can write the cache folder
    OrtBackend.from_bundle(bundle, "cuda", make=Factory(active={TRT_EP, CUDA_EP}))
    assert not engine.exists()  # cleared before onnxruntime could load it
