"""TensorRT at export time: the engine builder (from :mod:`glioedge.gpu.trt_build`, which the
runtime also uses on first use) and :class:`TrtRunner`, which runs an engine on CUDA buffers from
torch for the export's parity checks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from glioedge._optional import require
from glioedge.bundle import INPUT_NAME, OUTPUT_NAME
from glioedge.errors import BackendError
from glioedge.gpu.cuda import compute_capability as cuda_compute_capability
from glioedge.gpu.trt_build import (
    DEFAULT_ENGINE_CACHE,
    EngineSpec,
    build_engine,
    ensure_engine,
    tensorrt_unavailable_reason,
    timing_cache_path,
)

__all__ = ["DEFAULT_ENGINE_CACHE", "EngineSpec", "TrtRunner", "build_engine", "cuda_compute_capability",
           "ensure_engine", "tensorrt_unavailable_reason", "timing_cache_path"]


class TrtRunner:
    """Run a serialised engine on numpy batches on GPU ``device`` (CUDA buffers and stream from
    torch; for parity checks).

    Raises:
        MissingDependencyError: TensorRT or torch is missing.
        BackendError: the engine does not deserialise (other GPU or TensorRT version).
    """

    def __init__(self, engine_path: Path, device: int = 0) -> None:
        self._trt = require("tensorrt", "running a TensorRT engine")
        self._torch = require("torch", "allocating CUDA buffers for a TensorRT engine")
        self._device = self._torch.device("cuda", int(device))
        self._torch.cuda.set_device(self._device)
        runtime = self._trt.Runtime(self._trt.Logger(self._trt.Logger.WARNING))
        self._engine = runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self._engine is None:
            raise BackendError(
                f"{engine_path}: TensorRT cannot deserialise this engine (built for another GPU "
                "or TensorRT version?)"
            )
        self._context = self._engine.create_execution_context()
        self._stream = self._torch.cuda.Stream(device=self._device)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        ctx = self._context
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self._device)
        ctx.set_input_shape(INPUT_NAME, tuple(xt.shape))
        fp16_out = self._engine.get_tensor_dtype(OUTPUT_NAME) == self._trt.float16
        out_dtype = torch.float16 if fp16_out else torch.float32
        out = torch.empty(tuple(ctx.get_tensor_shape(OUTPUT_NAME)), dtype=out_dtype, device=self._device)
        ctx.set_tensor_address(INPUT_NAME, xt.data_ptr())
        ctx.set_tensor_address(OUTPUT_NAME, out.data_ptr())
        self._stream.wait_stream(torch.cuda.current_stream(self._device))  # the input copy
        if not ctx.execute_async_v3(self._stream.cuda_stream):
            raise BackendError("TensorRT execution failed")
        self._stream.synchronize()
        return out.float().cpu().numpy()
