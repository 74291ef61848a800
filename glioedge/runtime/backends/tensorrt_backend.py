"""TensorRT back-end (TensorRT 10+ named-tensor API), without torch.

The engine is the bundle's own for this GPU and TensorRT version, or one built from the bundle's
ONNX and cached on first use (:func:`glioedge.export.tensorrt.ensure_engine`). Device buffers,
copies and the stream come from the CUDA runtime library through ``ctypes`` (``libcudart``, which
the TensorRT wheels install as ``nvidia-cuda-runtime``), so no torch, cupy or pycuda is needed.
Execution: ``set_input_shape`` → ``set_tensor_address`` → ``execute_async_v3(stream)``.

Not exercised by the CPU test suite (it needs a GPU); the parity test is marked ``tensorrt``.
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path
from typing import Any

import numpy as np

from glioedge._optional import require
from glioedge.bundle import Bundle
from glioedge.errors import BackendError

logger = logging.getLogger(__name__)

_H2D, _D2H = 1, 2  # cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost


def _load_cudart() -> ctypes.CDLL:
    names = ["libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0"]
    try:  # the pip wheel nvidia-cuda-runtime-cuXX, a TensorRT dependency
        import nvidia.cuda_runtime as ncr  # type: ignore[import-not-found]

        for root in getattr(ncr, "__path__", []):
            names[:0] = sorted(str(p) for p in (Path(root) / "lib").glob("libcudart.so*"))
    except ImportError:
        pass
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise BackendError(
        "the CUDA runtime library (libcudart) was not found; install it with "
        "pip install nvidia-cuda-runtime-cu12 (or the CUDA toolkit)"
    )


class _Cuda:
    """The few CUDA runtime calls the back-end needs."""

    def __init__(self, device: int) -> None:
        self.lib = _load_cudart()
        self._check(self.lib.cudaSetDevice(ctypes.c_int(device)), "cudaSetDevice")
        self.stream = ctypes.c_void_p()
        self._check(self.lib.cudaStreamCreate(ctypes.byref(self.stream)), "cudaStreamCreate")

    def _check(self, code: int, what: str) -> None:
        if code != 0:
            raise BackendError(f"CUDA runtime: {what} failed with error {code}")

    def malloc(self, nbytes: int) -> int:
        ptr = ctypes.c_void_p()
        self._check(self.lib.cudaMalloc(ctypes.byref(ptr), ctypes.c_size_t(nbytes)), "cudaMalloc")
        return int(ptr.value or 0)

    def free(self, ptr: int) -> None:
        if ptr:
            self.lib.cudaFree(ctypes.c_void_p(ptr))

    def copy(self, dst: int, src: int, nbytes: int, kind: int) -> None:
        self._check(self.lib.cudaMemcpyAsync(ctypes.c_void_p(dst), ctypes.c_void_p(src),
                                             ctypes.c_size_t(nbytes), ctypes.c_int(kind),
                                             self.stream), "cudaMemcpyAsync")

    def sync(self) -> None:
        self._check(self.lib.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")

    def close(self) -> None:
        if self.stream:
            self.lib.cudaStreamDestroy(self.stream)
            self.stream = ctypes.c_void_p()


class TensorRTBackend:
    """Run a serialised TensorRT engine on numpy batches.

    Batches larger than the engine profile's maximum are split; device buffers are allocated
    once for the maximum batch.
    """

    def __init__(self, engine_path: Path, device: str | None = None,
                 input_name: str = "image", output_name: str = "logits") -> None:
        """Deserialise the engine and allocate buffers.

        Raises:
            MissingDependencyError: TensorRT is not installed.
            BackendError: the engine does not deserialise or CUDA fails.
        """
        self._trt = trt = require("tensorrt", "the TensorRT inference backend")
        text = str(device or "cuda")
        self._cuda = _Cuda(int(text.split(":", 1)[1]) if ":" in text else 0)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self._engine is None:
            raise BackendError(f"{engine_path}: TensorRT {trt.__version__} cannot deserialise this "
                               "engine (built for another GPU or TensorRT version?)")
        self._context = self._engine.create_execution_context()
        self._in, self._out = input_name, output_name
        _, _, max_shape = self._engine.get_tensor_profile_shape(input_name, 0)
        self.max_batch = int(max_shape[0])
        self._in_dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(input_name)))
        self._out_dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(output_name)))
        self._buffers: dict[str, tuple[int, int]] = {}
        self.name = f"tensorrt-{Path(engine_path).name.rsplit('.', 2)[-2]}"
        logger.info("TensorRT %s engine %s (max batch %d)", trt.__version__,
                    Path(engine_path).name, self.max_batch)

    @classmethod
    def from_bundle(cls, bundle: Bundle, device: str | None = None, *,
                    cache_dir: Path | None = None, batch_size: int = 2) -> TensorRTBackend:
        """Engine of the bundle for this GPU, else built now and cached under ``cache_dir``.

        Raises:
            MissingDependencyError: TensorRT is not installed.
            BackendError: no GPU, the build failed, or the engine does not load.
        """
        from glioedge.export.tensorrt import ensure_engine

        cache = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "glioedge" / "engines"
        profile = (1, max(1, batch_size), max(4, batch_size))
        path = ensure_engine(bundle, cache, precision="fp16", batch_profile=profile)
        return cls(path, device, bundle.manifest.input_name, bundle.manifest.output_name)

    def _buffer(self, key: str, nbytes: int) -> int:
        ptr, size = self._buffers.get(key, (0, 0))
        if size < nbytes:
            self._cuda.free(ptr)
            ptr, size = self._cuda.malloc(nbytes), nbytes
            self._buffers[key] = (ptr, size)
        return ptr

    def _run(self, x: np.ndarray) -> np.ndarray:
        ctx = self._context
        host_in = np.ascontiguousarray(x, dtype=self._in_dtype)
        if not ctx.set_input_shape(self._in, tuple(host_in.shape)):
            raise BackendError(f"TensorRT: input shape {host_in.shape} is outside the engine profile")
        out_shape = tuple(int(d) for d in ctx.get_tensor_shape(self._out))
        host_out = np.empty(out_shape, dtype=self._out_dtype)
        d_in = self._buffer("in", host_in.nbytes)
        d_out = self._buffer("out", host_out.nbytes)
        ctx.set_tensor_address(self._in, d_in)
        ctx.set_tensor_address(self._out, d_out)
        self._cuda.copy(d_in, host_in.ctypes.data, host_in.nbytes, _H2D)
        if not ctx.execute_async_v3(self._cuda.stream.value or 0):
            raise BackendError("TensorRT execution failed (execute_async_v3 returned False)")
        self._cuda.copy(host_out.ctypes.data, d_out, host_out.nbytes, _D2H)
        self._cuda.sync()
        return host_out.astype(np.float32, copy=False)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Float32 logits for a batch ``(B, C, X, Y, Z)``, split into the profile's maximum.

        Raises:
            BackendError: the shape is outside the profile or execution fails.
        """
        parts = [self._run(batch[i:i + self.max_batch]) for i in range(0, len(batch), self.max_batch)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def close(self) -> None:
        """Free device buffers and the stream."""
        for ptr, _ in self._buffers.values():
            self._cuda.free(ptr)
        self._buffers.clear()
        self._cuda.close()
        self._context: Any = None
