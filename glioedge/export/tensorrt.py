"""TensorRT at export time: the engine builder (from :mod:`glioedge.gpu.trt_build`, which the
runtime also uses on first use) and :class:`TrtRunner`, the runtime's engine runner
(:mod:`glioedge.gpu.trt_run`) called as a function by the export's parity checks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from glioedge.bundle import INPUT_NAME, OUTPUT_NAME
from glioedge.gpu.cuda import compute_capability as cuda_compute_capability
from glioedge.gpu.trt_build import (
    DEFAULT_ENGINE_CACHE,
    EngineSpec,
    build_engine,
    ensure_engine,
    tensorrt_unavailable_reason,
    timing_cache_path,
)
from glioedge.gpu.trt_run import EngineRunner

__all__ = ["DEFAULT_ENGINE_CACHE", "EngineSpec", "TrtRunner", "build_engine", "cuda_compute_capability",
           "ensure_engine", "tensorrt_unavailable_reason", "timing_cache_path"]


class TrtRunner(EngineRunner):
    """Run a serialised engine on numpy batches on GPU ``device`` for the export's parity checks:
    the runtime's :class:`~glioedge.gpu.trt_run.EngineRunner` (CUDA through ctypes, no torch).

    Raises:
        MissingDependencyError: TensorRT is missing.
        BackendError: the engine does not deserialise (other GPU or TensorRT version) or CUDA fails.
    """

    def __init__(self, engine_path: Path, device: int = 0) -> None:
        super().__init__(engine_path, f"cuda:{int(device)}", INPUT_NAME, OUTPUT_NAME)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.predict(x)
