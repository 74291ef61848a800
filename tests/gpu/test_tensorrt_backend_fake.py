"""The TensorRT back-end's buffers, copies and stream, through a fake ``tensorrt`` and a fake
CUDA runtime whose "device memory" is host memory (no GPU here): buffers are allocated once for
the profile's largest batch, every run makes the engine's GPU current and runs on its own stream,
a large batch is split, and the staging buffer is not returned to the caller."""

from __future__ import annotations

import ctypes
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from glioedge.gpu import trt_run
from glioedge.runtime.backends import tensorrt_backend as tb


class FakeCuda:
    instances: ClassVar[list[FakeCuda]] = []

    def __init__(self, device: int = 0) -> None:
        self.device = device
        self.buffers: dict[int, Any] = {}
        self.calls: list[tuple] = []
        self.stream_handle = 777
        FakeCuda.instances.append(self)

    def _alloc(self, nbytes: int, kind: str) -> int:
        buf = (ctypes.c_byte * nbytes)()
        self.buffers[ctypes.addressof(buf)] = buf
        self.calls.append((kind, nbytes))
        return ctypes.addressof(buf)

    def malloc(self, nbytes: int) -> int:
        return self._alloc(nbytes, "malloc")

    def malloc_host(self, nbytes: int) -> int:
        return self._alloc(nbytes, "malloc_host")

    def use(self) -> None:
        self.calls.append(("use", self.device))

    def copy_async(self, dst: int, src: int, nbytes: int, kind: int) -> None:
        assert src in self.buffers and dst in self.buffers  # only pinned ↔ device, no pageable
        ctypes.memmove(dst, src, nbytes)
        self.calls.append(("copy", kind))

    def sync(self) -> None:
        self.calls.append(("sync",))

    def free(self, ptr: int) -> None:
        self.calls.append(("free", ptr))

    def free_host(self, ptr: int) -> None:
        self.calls.append(("free_host", ptr))

    def close(self) -> None:
        self.calls.append(("close",))


def _view(ptr: int, shape: tuple[int, ...]) -> np.ndarray:
    n = int(np.prod(shape)) * 4
    return np.frombuffer((ctypes.c_byte * n).from_address(ptr), dtype=np.float32).reshape(shape)


def fake_trt(max_batch: int = 4, classes: int = 3) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.13.0"
    trt.float32 = "float32"

    class Context:
        def __init__(self) -> None:
            self.shape: tuple[int, ...] = ()
            self.addr: dict[str, int] = {}
            self.streams: list[int] = []

        def set_input_shape(self, name: str, shape: tuple) -> bool:
            self.shape = tuple(shape)
            return 1 <= shape[0] <= max_batch

        def get_tensor_shape(self, name: str) -> tuple:
            return (self.shape[0], classes, *self.shape[2:]) if name == "logits" else self.shape

        def set_tensor_address(self, name: str, ptr: int) -> None:
            self.addr[name] = ptr

        def execute_async_v3(self, stream: int) -> bool:
            self.streams.append(stream)
            x = _view(self.addr["image"], self.shape)
            y = _view(self.addr["logits"], (self.shape[0], classes, *self.shape[2:]))
            for k in range(classes):  # logit k = (k + 1) · channel sum
                y[:, k] = (k + 1) * x.sum(axis=1)
            return True

    class Engine:
        def __init__(self) -> None:
            self.context = Context()

        def create_execution_context(self) -> Context:
            return self.context

        def get_tensor_profile_shape(self, name: str, profile: int) -> tuple:
            return ((1, 2, 4, 4, 4), (2, 2, 4, 4, 4), (max_batch, 2, 4, 4, 4))

        def get_tensor_dtype(self, name: str) -> str:
            return "float32"

    class Runtime:
        def __init__(self, logger: Any) -> None:
            pass

        def deserialize_cuda_engine(self, data: bytes) -> Engine:
            trt.engine = Engine()  # type: ignore[attr-defined]
            return trt.engine  # type: ignore[attr-defined]

    trt.Runtime = Runtime
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    trt.nptype = lambda dtype: np.float32
    return trt


def test_staging_buffers_once_own_stream_device_and_split_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trt = fake_trt(max_batch=4)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(trt_run, "CudaRuntime", FakeCuda)
    engine_file = tmp_path / "model.sm90.trt10.13.0.fp16.engine"
    engine_file.write_bytes(b"engine")
    backend = tb.TensorRTBackend(engine_file, "cuda:1")
    cuda = FakeCuda.instances[-1]
    assert cuda.device == 1
    allocs = [c for c in cuda.calls if c[0] in ("malloc", "malloc_host")]
    in_bytes, out_bytes = 4 * 2 * 64 * 4, 4 * 3 * 64 * 4  # profile maximum, float32
    assert sorted(allocs) == sorted([("malloc", in_bytes), ("malloc_host", in_bytes),
                                     ("malloc", out_bytes), ("malloc_host", out_bytes)])

    x = np.random.default_rng(0).normal(size=(6, 2, 4, 4, 4)).astype(np.float32)
    first = backend.predict(x)  # 6 windows: split into 4 + 2
    expected = np.stack([(k + 1) * x.sum(axis=1) for k in range(3)], axis=1)
    np.testing.assert_allclose(first, expected, rtol=1e-6)
    second = backend.predict(x[:1])
    np.testing.assert_allclose(first, expected, rtol=1e-6)  # not overwritten by the next call
    assert second.shape == (1, 3, 4, 4, 4)
    assert len([c for c in cuda.calls if c[0] in ("malloc", "malloc_host")]) == 4  # no new buffers
    assert trt.engine.context.streams == [777, 777, 777]  # type: ignore[attr-defined]
    assert [c for c in cuda.calls if c[0] == "use"] == [("use", 1)] * 3
    backend.close()
    assert [c[0] for c in cuda.calls[-5:]] == ["free", "free", "free_host", "free_host", "close"]


def test_export_parity_runner_is_the_runtime_runner_and_needs_no_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 21 item 3: one way to reach CUDA. The export's TrtRunner is the runtime's engine runner
    (CUDA through ctypes), so it runs where torch is absent."""
    from glioedge.export.tensorrt import TrtRunner

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch → ImportError
    monkeypatch.setitem(sys.modules, "tensorrt", fake_trt(max_batch=2))
    monkeypatch.setattr(trt_run, "CudaRuntime", FakeCuda)
    engine_file = tmp_path / "model.sm80.trt10.13.0.fp16.engine"
    engine_file.write_bytes(b"engine")
    run = TrtRunner(engine_file, device=1)
    assert isinstance(run, trt_run.EngineRunner) and FakeCuda.instances[-1].device == 1
    x = np.ones((3, 2, 4, 4, 4), dtype=np.float32)
    np.testing.assert_allclose(run(x)[:, 2], np.full((3, 4, 4, 4), 6.0))  # 3 · (1 + 1), split 2 + 1
