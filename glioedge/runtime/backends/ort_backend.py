"""ONNX Runtime back-end: TensorRT or CUDA execution providers on a GPU, the CPU provider else.

Which providers are asked for, with which options, is :mod:`.ort_providers`. Which model runs is
decided **after** the session exists, from ``session.get_providers()``: a GPU provider that is
listed but fails to initialise (no TensorRT libraries, no cuDNN, no GPU) is dropped by ONNX
Runtime without an error. On a GPU provider the bundle's ``model.fp16.onnx`` runs (FP16
convolutions, FP32 InstanceNorm and FP32 I/O); when the session ends up on the CPU, it is
reopened with the FP32 ``model.onnx`` (or refused, when a CUDA device was asked for explicitly).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from glioedge._optional import require
from glioedge.bundle import Bundle
from glioedge.errors import BackendError
from glioedge.gpu.engine_trust import EngineTrust
from glioedge.runtime.backends import ort_providers
from glioedge.runtime.backends.ort_providers import (
    CPU_EP,
    CUDA_EP,
    GPU_EPS,
    TRT_EP,
    active_provider,
    check_provider_devices,
    provider_name,
    segmentation_providers,
    wants_cpu,
)

logger = logging.getLogger(__name__)

__all__ = ["CPU_EP", "CUDA_EP", "TRT_EP", "OrtBackend", "choose_providers", "open_session"]

#: ``(model_path, providers) -> session``; tests pass a fake.
SessionFactory = Callable[[Path, list[Any]], Any]


def choose_providers(
    available: list[str], device: str | None, engine_cache: Path | None = None
) -> tuple[list[Any], bool]:
    """Providers asked for on ``device`` and whether the FP16 model is the one to try first.

    Raises:
        BackendError: a CUDA device was asked for but no GPU provider is installed.
    """
    providers = segmentation_providers(available, device, cache_dir=engine_cache)
    first = providers[0] if isinstance(providers[0], str) else providers[0][0]
    return providers, first in GPU_EPS


def open_session(
    fp32_model: Path, fp16_model: Path | None, providers: list[Any], device: str | None,
    make: SessionFactory,
) -> tuple[Any, Path]:
    """A session and the model it runs, the model decided from the providers actually active.

    Raises:
        BackendError: a CUDA device was asked for and no GPU provider initialised.
    """
    gpu_asked = not isinstance(providers[0], str) or providers[0] != CPU_EP
    model = fp16_model if gpu_asked and fp16_model is not None else fp32_model
    try:
        session = make(Path(model), providers)
    except BackendError as exc:  # our own fallback, which keeps the other providers' options
        if TRT_EP not in [provider_name(p) for p in providers]:
            raise
        logger.warning("the TensorRT provider of onnxruntime failed (%s); retrying without it", exc)
        providers = [p for p in providers if provider_name(p) != TRT_EP]
        session = make(Path(model), providers)
    check_provider_devices(session, providers)
    active = active_provider(session)
    if active in GPU_EPS:
        if model != fp16_model:
            logger.warning("%s runs the FP32 model: the bundle has no model.fp16.onnx", active)
        return session, Path(model)
    if gpu_asked and device is not None and not wants_cpu(device):
        raise BackendError(
            f"device {device!r} asked for, but no GPU provider of onnxruntime initialised (active: "
            f"{', '.join(session.get_providers())}); run `glioedge doctor` to see what is missing"
        )
    if Path(model) != Path(fp32_model):
        logger.warning("onnxruntime fell back to %s; reopening with the FP32 model", active)
        session = make(Path(fp32_model), [CPU_EP])
    return session, Path(fp32_model)


class OrtBackend:
    """Run an ONNX model with ONNX Runtime.

    Attributes:
        name: ``onnxruntime-<provider>`` of the provider actually in use (e.g.
            ``onnxruntime-cpu``), with ``-fp16`` when the FP16 model runs.
        providers: the session's providers, best first.
        model_path: the model file the session runs.
    """

    def __init__(
        self,
        model_path: Path,
        providers: list[Any] | None = None,
        *,
        input_name: str = "image",
        output_name: str = "logits",
        threads: int | None = None,
        session: Any = None,
    ) -> None:
        """Open an inference session (or wrap ``session``, already open on ``model_path``).

        Raises:
            MissingDependencyError: onnxruntime is not installed.
            BackendError: the model does not load.
        """
        self._session = session if session is not None else _session_factory(threads)(
            Path(model_path), providers or [CPU_EP])
        self.model_path = Path(model_path)
        self.providers: list[str] = list(self._session.get_providers())
        self._input = input_name
        self._output = output_name
        short = self.providers[0].replace("ExecutionProvider", "").lower()
        fp16 = ".fp16." in self.model_path.name
        self.name = f"onnxruntime-{short}" + ("-fp16" if fp16 else "")
        logger.info("onnxruntime session on %s (model %s)", self.providers[0], self.model_path.name)

    @classmethod
    def from_bundle(cls, bundle: Bundle, device: str | None = None, threads: int | None = None, *,
                    batch_size: int = 2, make: SessionFactory | None = None,
                    engine_cache: Path | None = None) -> OrtBackend:
        """The session for a bundle on ``device`` (see the module docstring).

        The TensorRT provider's engine cache is ``<engine_cache>/<bundle_id>/ort-trt`` (default
        root: ``.glioedge-cache`` next to the bundle, else ``~/.cache/glioedge/engines``). Its
        files are used only when a trust record sealed by this box lists them as built from the
        bundle's model (:class:`~glioedge.gpu.engine_trust.EngineTrust`); otherwise the folder is
        emptied and ONNX Runtime rebuilds.

        Raises:
            MissingDependencyError: onnxruntime is not installed.
            BackendError: GPU asked for without a usable GPU provider, a GPU provider on another
                device than asked for, or the model does not load.
        """
        m = bundle.manifest
        if make is None:
            ort = require("onnxruntime", "the onnxruntime inference backend")
            available = list(ort.get_available_providers())
            make = _session_factory(threads)
        else:
            available = list(getattr(make, "available", [CPU_EP]))
        if TRT_EP in available and not wants_cpu(device) and not ort_providers.tensorrt_provider_loads():
            logger.info("onnxruntime lists its TensorRT provider, but TensorRT's library (libnvinfer) "
                        "does not load here: not asking for it")
            available.remove(TRT_EP)
        cache, trust, model_sha = None, None, ""
        if TRT_EP in available and not wants_cpu(device):
            cache, trust = _trt_cache(bundle, engine_cache)
            model = bundle.fp16_model_path or bundle.model_path
            rel = Path(model).relative_to(bundle.root).as_posix()
            model_sha = m.files.get(rel, "")
            if trust is not None:
                trust.vet_folder(cache, model_sha)
        providers = segmentation_providers(
            available, device, input_name=m.input_name, channels=len(m.modalities),
            patch=tuple(m.patch_size), batch_size=batch_size, cache_dir=cache)
        session, model = open_session(bundle.model_path, bundle.fp16_model_path, providers, device, make)
        if trust is not None and cache is not None and active_provider(session) == TRT_EP:
            trust.record_folder(cache, model_sha)  # ORT built (or reused) its engine at creation
        return cls(model, input_name=m.input_name, output_name=m.output_name, session=session)

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
        self._session = None


def _trt_cache(bundle: Bundle, engine_cache: Path | None) -> tuple[Path | None, EngineTrust | None]:
    """The TensorRT provider's cache folder and the trust of its root; ``(None, None)`` (no
    cache: engines are rebuilt per session) when no candidate root is writable."""
    from glioedge.gpu.trt_build import DEFAULT_ENGINE_CACHE

    roots = ([Path(engine_cache)] if engine_cache is not None else
             [bundle.root.parent / ".glioedge-cache", DEFAULT_ENGINE_CACHE])
    for root in roots:
        folder = root / bundle.manifest.bundle_id / "ort-trt"
        trust = EngineTrust(root)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _ = trust.key
        except OSError as exc:
            logger.warning("engine cache %s is not writable (%s)", root, exc.strerror or exc)
            continue
        return folder, trust
    logger.warning("no writable engine cache: the TensorRT provider rebuilds its engine per session; "
                   "set [model] engine_cache (or --engine-cache)")
    return None, None


def _session_factory(threads: int | None) -> SessionFactory:
    ort = require("onnxruntime", "the onnxruntime inference backend")

    def make(model: Path, providers: list[Any]) -> Any:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = int(threads)
        try:  # enable_fallback=0: ONNX Runtime's fallback drops every provider option
            return ort.InferenceSession(str(model), options, providers=providers, enable_fallback=0)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise BackendError(f"onnxruntime cannot load {model}: {exc}") from exc

    return make
