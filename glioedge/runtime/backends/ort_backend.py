"""ONNX Runtime back-end: TensorRT or CUDA execution providers on a GPU, the CPU provider else.

On a GPU the bundle's ``model.fp16.onnx`` (FP16 convolutions, FP32 InstanceNorm and FP32 I/O)
runs under the CUDA provider; the TensorRT provider takes the FP32 model and builds its own FP16
engine (cached beside the bundle id). On the CPU the FP32 ``model.onnx`` runs. The providers
actually in use are read back from the session and logged, since ONNX Runtime silently falls back
when a provider fails to initialise.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from glioedge._optional import require
from glioedge.bundle import Bundle
from glioedge.errors import BackendError

logger = logging.getLogger(__name__)

TRT_EP = "TensorrtExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"


def _device_id(device: str | None) -> int:
    text = str(device or "cuda")
    return int(text.split(":", 1)[1]) if ":" in text else 0


def choose_providers(
    available: list[str], device: str | None, engine_cache: Path | None = None
) -> tuple[list[Any], bool]:
    """Execution providers (with options) for ``device`` and whether the FP16 model fits them.

    Args:
        available: ``onnxruntime.get_available_providers()``.
        device: ``None`` (best), ``"cpu"`` or ``"cuda[:N]"``.
        engine_cache: folder for the TensorRT provider's engine cache.

    Returns:
        ``(providers, use_fp16_model)``.

    Raises:
        BackendError: a CUDA device was asked for but no GPU provider is installed.
    """
    cpu_only = device is not None and str(device).lower().startswith("cpu")
    if cpu_only:
        return [CPU_EP], False
    dev = _device_id(device)
    providers: list[Any] = []
    if TRT_EP in available:
        opts: dict[str, Any] = {"device_id": dev, "trt_fp16_enable": True}
        if engine_cache is not None:
            opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(engine_cache))
        providers.append((TRT_EP, opts))
    if CUDA_EP in available:
        providers.append((CUDA_EP, {"device_id": dev}))
    if not providers and device is not None:
        raise BackendError(
            f"device {device!r} asked for, but onnxruntime has no GPU provider (available: "
            f"{', '.join(available)}). Install onnxruntime-gpu (pip uninstall onnxruntime; "
            "pip install onnxruntime-gpu)"
        )
    # FP16 graph only for the CUDA provider alone: TensorRT's provider builds FP16 itself.
    use_fp16 = bool(providers) and TRT_EP not in available
    return [*providers, CPU_EP], use_fp16


class OrtBackend:
    """Run an ONNX model with ONNX Runtime.

    Attributes:
        name: ``onnxruntime-<provider>`` of the provider actually in use (e.g.
            ``onnxruntime-cpu``), with ``-fp16`` when the FP16 model runs.
        providers: the session's providers, best first.
    """

    def __init__(
        self,
        model_path: Path,
        providers: list[Any] | None = None,
        *,
        input_name: str = "image",
        output_name: str = "logits",
        threads: int | None = None,
    ) -> None:
        """Open an inference session.

        Raises:
            MissingDependencyError: onnxruntime is not installed.
            BackendError: the model does not load.
        """
        ort = require("onnxruntime", "the onnxruntime inference backend")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self._session = ort.InferenceSession(str(model_path), options,
                                                 providers=providers or [CPU_EP])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise BackendError(f"onnxruntime cannot load {model_path}: {exc}") from exc
        self.providers: list[str] = list(self._session.get_providers())
        self._input = input_name
        self._output = output_name
        short = self.providers[0].replace("ExecutionProvider", "").lower()
        fp16 = ".fp16." in Path(model_path).name
        self.name = f"onnxruntime-{short}" + ("-fp16" if fp16 else "")
        logger.info("onnxruntime session on %s (model %s; providers available: %s)",
                    self.providers[0], Path(model_path).name,
                    ", ".join(ort.get_available_providers()))

    @classmethod
    def from_bundle(cls, bundle: Bundle, device: str | None = None,
                    threads: int | None = None) -> OrtBackend:
        """The session for a bundle on ``device`` (see :func:`choose_providers`).

        Raises:
            MissingDependencyError: onnxruntime is not installed.
            BackendError: GPU asked for without a GPU provider, or the model does not load.
        """
        ort = require("onnxruntime", "the onnxruntime inference backend")
        cache = Path.home() / ".cache" / "glioedge" / "ort-trt" / bundle.manifest.bundle_id
        providers, fp16 = choose_providers(list(ort.get_available_providers()), device, cache)
        model = bundle.fp16_model_path if fp16 and bundle.fp16_model_path else bundle.model_path
        return cls(model, providers, input_name=bundle.manifest.input_name,
                   output_name=bundle.manifest.output_name, threads=threads)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Float32 logits for a float32 batch ``(B, C, X, Y, Z)``.

        Raises:
            BackendError: the session fails on the batch.
        """
        x = np.ascontiguousarray(batch, dtype=np.float32)
        try:
            (out,) = self._session.run([self._output], {self._input: x})
        except Exception as exc:  # onnxruntime's own error types
            raise BackendError(f"{self.name}: inference failed on a batch {x.shape}: {exc}") from exc
        return np.asarray(out, dtype=np.float32)

    def close(self) -> None:
        """Drop the session."""
        self._session = None  # type: ignore[assignment]
