"""TensorRT back-end: the bundle's engine for this GPU and TensorRT version, or one built from the
bundle's ONNX and cached on first use (:func:`glioedge.gpu.trt_build.ensure_engine`), run by
:class:`glioedge.gpu.trt_run.EngineRunner` (CUDA through ctypes, no torch).

Not exercised by the CPU test suite (it needs a GPU); the parity test is marked ``tensorrt``.
"""

from __future__ import annotations

from pathlib import Path

from glioedge.bundle import Bundle
from glioedge.gpu.cuda import device_index
from glioedge.gpu.trt_run import EngineRunner

__all__ = ["TensorRTBackend"]


class TensorRTBackend(EngineRunner):
    """An :class:`EngineRunner` opened from a bundle; batches larger than the engine profile's
    maximum are split."""

    @classmethod
    def from_bundle(cls, bundle: Bundle, device: str | None = None, *,
                    cache_dir: Path | None = None, batch_size: int = 2) -> TensorRTBackend:
        """Engine of the bundle for this GPU, else built now and cached under ``cache_dir``
        (FP16 from ``model.fp16.onnx``; FP32 from ``model.onnx`` when the bundle has no FP16 model).

        Raises:
            MissingDependencyError: TensorRT is not installed.
            BackendError: no GPU, the build failed, the cache is not writable, or the engine does
                not load.
        """
        from glioedge.gpu.trt_build import DEFAULT_ENGINE_CACHE, ensure_engine

        cache = Path(cache_dir) if cache_dir else DEFAULT_ENGINE_CACHE
        profile = (1, max(1, batch_size), max(4, batch_size))
        path = ensure_engine(bundle, cache, precision=None, batch_profile=profile,
                             device=device_index(device))
        return cls(path, device, bundle.manifest.input_name, bundle.manifest.output_name)
