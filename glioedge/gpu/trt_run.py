"""Run a serialised TensorRT engine on numpy batches (TensorRT ≥ 10 named-tensor API), torch-free.

The one way glioedge reaches an engine on the GPU: the runtime's TensorRT back-end and the export's
parity check both use :class:`EngineRunner`. CUDA comes from :class:`glioedge.gpu.cuda.CudaRuntime`
(the CUDA runtime of NVIDIA's CUDA 12 or 13 wheels, through ctypes): device buffers and page-locked
host staging buffers are allocated once, for the profile's largest batch, and the engine runs on its
own non-blocking stream on the GPU asked for.
Execution: copy into the pinned input → ``set_input_shape`` → async H2D → ``execute_async_v3`` →
async D2H into the pinned output → synchronise the stream.
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path
from typing import Any

import numpy as np

from glioedge._optional import require
from glioedge.errors import BackendError
from glioedge.gpu.cuda import D2H, H2D, CudaRuntime, device_index

logger = logging.getLogger(__name__)

__all__ = ["EngineRunner"]


def _host_view(ptr: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A numpy array over page-locked memory at ``ptr`` (no copy)."""
    nbytes = int(np.prod(shape)) * dtype.itemsize
    buf = (ctypes.c_byte * nbytes).from_address(ptr)
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


class EngineRunner:
    """Run a serialised TensorRT engine on numpy batches.

    Batches larger than the engine profile's maximum are split.
    """

    def __init__(self, engine_path: Path, device: str | None = None,
                 input_name: str = "image", output_name: str = "logits") -> None:
        """Deserialise the engine on ``device`` and allocate its buffers once.

        Raises:
            MissingDependencyError: TensorRT is not installed.
            BackendError: the engine does not deserialise or CUDA fails.
        """
        self._trt = trt = require("tensorrt", "running a TensorRT engine")
        self.device = device_index(device)
        self._cuda = CudaRuntime(self.device)
        self._buffers: dict[str, int] = {}
        self._host: dict[str, int] = {}
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
        if not self._context.set_input_shape(input_name, tuple(max_shape)):
            raise BackendError(f"TensorRT: cannot set the profile's maximum shape {tuple(max_shape)}")
        max_out = tuple(int(d) for d in self._context.get_tensor_shape(output_name))
        self._max_in = tuple(int(d) for d in max_shape)
        self._max_out = max_out
        for key, shape, dtype in (("in", self._max_in, self._in_dtype), ("out", max_out, self._out_dtype)):
            nbytes = int(np.prod(shape)) * dtype.itemsize
            self._buffers[key] = self._cuda.malloc(nbytes)
            self._host[key] = self._cuda.malloc_host(nbytes)
        self._context.set_tensor_address(input_name, self._buffers["in"])
        self._context.set_tensor_address(output_name, self._buffers["out"])
        self.name = f"tensorrt-{Path(engine_path).name.rsplit('.', 2)[-2]}"
        logger.info("TensorRT %s engine %s on GPU %d (max batch %d)", trt.__version__,
                    Path(engine_path).name, self.device, self.max_batch)

    def _run(self, x: np.ndarray) -> np.ndarray:
        ctx, n = self._context, len(x)
        shape_in = (n, *self._max_in[1:])
        if tuple(x.shape) != shape_in:
            raise BackendError(f"TensorRT: batch {x.shape} does not fit the engine's {self._max_in}")
        if not ctx.set_input_shape(self._in, shape_in):
            raise BackendError(f"TensorRT: input shape {shape_in} is outside the engine profile")
        shape_out = tuple(int(d) for d in ctx.get_tensor_shape(self._out))
        host_in = _host_view(self._host["in"], shape_in, self._in_dtype)
        host_out = _host_view(self._host["out"], shape_out, self._out_dtype)
        host_in[...] = x
        self._cuda.use()  # the calling thread may not be the one that opened the engine
        self._cuda.copy_async(self._buffers["in"], self._host["in"], host_in.nbytes, H2D)
        if not ctx.execute_async_v3(self._cuda.stream_handle):
            raise BackendError("TensorRT execution failed (execute_async_v3 returned False)")
        self._cuda.copy_async(self._host["out"], self._buffers["out"], host_out.nbytes, D2H)
        self._cuda.sync()
        return host_out.astype(np.float32, copy=True)  # the staging buffer is reused

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Float32 logits for a batch ``(B, C, X, Y, Z)``, split into the profile's maximum.

        Raises:
            BackendError: the shape is outside the profile or execution fails.
        """
        parts = [self._run(batch[i:i + self.max_batch]) for i in range(0, len(batch), self.max_batch)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def close(self) -> None:
        """Free device and pinned buffers and the stream."""
        for ptr in self._buffers.values():
            self._cuda.free(ptr)
        for ptr in self._host.values():
            self._cuda.free_host(ptr)
        self._buffers.clear()
        self._host.clear()
        self._cuda.close()
        self._context: Any = None
