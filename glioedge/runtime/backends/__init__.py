"""Inference back-ends behind one small interface, and the choice among them.

A :class:`Backend` maps a float32 batch of windows ``(B, C, X, Y, Z)`` to float32 logits
``(B, K, X, Y, Z)``. Three implementations:

* ``tensorrt`` (:mod:`.tensorrt_backend`): the bundle's engine for this GPU, or one built and
  cached on first use;
* ``onnxruntime`` (:mod:`.ort_backend`): TensorRT / CUDA execution providers with the FP16 model
  on a GPU, the CPU provider with the FP32 model;
* ``torch`` (:mod:`.torch_backend`): the PyTorch reference, from a training checkpoint.

Each module is imported only when its back-end is asked for, so this package imports neither
torch nor onnxruntime nor TensorRT.

May import: what ``runtime`` may (``tests/test_architecture.py``): here ``gpu``, ``bundle``,
``data``; and ``train`` from :mod:`.torch_backend` only (the documented exception).
"""

from __future__ import annotations

import logging
from enum import Enum
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from glioedge.bundle import Bundle
from glioedge.errors import BackendError, ConfigError, GlioedgeError

logger = logging.getLogger(__name__)

__all__ = ["INSTALL_HINTS", "Backend", "BackendName", "available_backends", "select_backend"]


class BackendName(str, Enum):
    """Names accepted by :func:`select_backend` (and ``glioedge segment --backend``)."""

    AUTO = "auto"
    TENSORRT = "tensorrt"
    ONNXRUNTIME = "onnxruntime"
    TORCH = "torch"

    def __str__(self) -> str:
        return self.value


#: What to install for each back-end (named in every "unavailable" error).
INSTALL_HINTS: dict[BackendName, str] = {
    BackendName.TENSORRT: "pip install tensorrt (and an NVIDIA GPU with a matching driver)",
    BackendName.ONNXRUNTIME: "pip install onnxruntime (CPU) or onnxruntime-gpu (CUDA/TensorRT)",
    BackendName.TORCH: "pip install 'glioedge[train]' (torch), and pass the training checkpoint",
}


@runtime_checkable
class Backend(Protocol):
    """What the sliding window needs from an inference engine."""

    name: str

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Float32 logits ``(B, K, X, Y, Z)`` for a float32 batch ``(B, C, X, Y, Z)``."""
        ...

    def close(self) -> None:
        """Release sessions and device memory."""
        ...


def _name(value: BackendName | str) -> BackendName:
    try:
        return BackendName(str(getattr(value, "value", value)).lower())
    except ValueError:
        valid = ", ".join(b.value for b in BackendName)
        raise ConfigError(f"unknown backend {value!r}; valid: {valid}") from None


def _wants_gpu(device: str | None) -> bool:
    return device is None or not str(device).lower().startswith("cpu")


def _unavailable(name: BackendName, reason: str) -> BackendError:
    return BackendError(f"backend '{name.value}' is unavailable: {reason}. Install: {INSTALL_HINTS[name]}")


def tensorrt_reason(device: str | None = None) -> str | None:
    """Why the TensorRT back-end cannot run on ``device`` here (``None`` when it can)."""
    from glioedge.gpu.cuda import device_index
    from glioedge.gpu.trt_build import tensorrt_unavailable_reason

    return tensorrt_unavailable_reason(device_index(device))


def _ort_providers() -> list[str] | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return list(onnxruntime.get_available_providers())


def _torch_available() -> bool:
    """Whether torch is importable, without importing it (it costs seconds and memory)."""
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules["torch"] is None
        return False


def available_backends(checkpoint: Path | None = None) -> dict[str, str | None]:
    """Each back-end → ``None`` when usable here, else why not (for logs and ``--help``)."""
    providers = _ort_providers()
    return {
        "tensorrt": tensorrt_reason(),
        "onnxruntime": None if providers is not None else "onnxruntime is not installed",
        "torch": (None if _torch_available() and checkpoint is not None else
                  "torch is not installed" if not _torch_available() else "needs a checkpoint"),
    }


def select_backend(
    bundle: Bundle,
    name: BackendName | str = BackendName.AUTO,
    device: str | None = None,
    *,
    checkpoint: Path | None = None,
    cache_dir: Path | None = None,
    batch_size: int = 2,
) -> Backend:
    """Open a back-end for ``bundle``; ``"auto"`` picks TensorRT > ORT-CUDA > ORT-CPU > torch.

    Args:
        bundle: the model bundle (its ONNX models and engines).
        name: ``auto``, ``tensorrt``, ``onnxruntime`` or ``torch``.
        device: ``None`` (best available), ``"cpu"``, or ``"cuda"`` / ``"cuda:N"``.
        checkpoint: training checkpoint directory, required by the torch back-end.
        cache_dir: where TensorRT engines built on first use (and ONNX Runtime's TensorRT
            engine cache) are kept (default ``~/.cache/glioedge/engines``; the daemon's
            ``[model] engine_cache``, ``--engine-cache``).
        batch_size: windows per call (the TensorRT profile's optimum).

    Raises:
        BackendError: the requested back-end (or, for ``auto``, every back-end) is unavailable;
            the message says what to install.
        ConfigError: unknown back-end name.
    """
    wanted = _name(name)
    if wanted is BackendName.TENSORRT:
        if not _wants_gpu(device):
            raise BackendError("backend 'tensorrt' runs on a GPU only; device='cpu' was asked for")
        if (reason := tensorrt_reason(device)) is not None:
            raise _unavailable(wanted, reason)
        from glioedge.runtime.backends.tensorrt_backend import TensorRTBackend

        return _chosen(TensorRTBackend.from_bundle(bundle, device, cache_dir=cache_dir,
                                                   batch_size=batch_size), "requested")
    if wanted is BackendName.ONNXRUNTIME:
        if _ort_providers() is None:
            raise _unavailable(wanted, "the Python package 'onnxruntime' is not installed")
        from glioedge.runtime.backends.ort_backend import OrtBackend

        return _chosen(OrtBackend.from_bundle(bundle, device, batch_size=batch_size,
                                              engine_cache=cache_dir), "requested")
    if wanted is BackendName.TORCH:
        if not _torch_available():
            raise _unavailable(wanted, "the Python package 'torch' is not installed")
        if checkpoint is None:
            raise BackendError(
                "backend 'torch' is the PyTorch reference and needs the training checkpoint "
                "(Segmenter.from_checkpoint or checkpoint=...); a bundle holds ONNX only"
            )
        from glioedge.runtime.backends.torch_backend import TorchBackend

        return _chosen(TorchBackend.from_checkpoint(checkpoint, device, bundle=bundle), "requested")
    return _auto(bundle, device, checkpoint, cache_dir, batch_size)


def _chosen(backend: Backend, why: str) -> Backend:
    logger.info("inference backend: %s (%s)", backend.name, why)
    return backend


def _auto(
    bundle: Bundle, device: str | None, checkpoint: Path | None, cache_dir: Path | None,
    batch_size: int,
) -> Backend:
    reasons: list[str] = []
    if _wants_gpu(device):
        reason = tensorrt_reason(device)
        if reason is None:
            try:
                from glioedge.runtime.backends.tensorrt_backend import TensorRTBackend

                return _chosen(TensorRTBackend.from_bundle(
                    bundle, device, cache_dir=cache_dir, batch_size=batch_size), "auto: fastest")
            except (GlioedgeError, OSError, ValueError, RuntimeError) as exc:
                # auto falls back instead of falling over: a bundle without model.fp16.onnx, an
                # unwritable cache (systemd ProtectHome=), a bad sidecar, TensorRT's own errors
                reason = f"{type(exc).__name__}: {exc}"
                logger.warning("TensorRT back-end unavailable, falling back: %s", reason)
        reasons.append(f"tensorrt: {reason}")
    providers = _ort_providers()
    if providers is not None:
        from glioedge.runtime.backends.ort_backend import OrtBackend

        backend = OrtBackend.from_bundle(bundle, device, batch_size=batch_size, engine_cache=cache_dir)
        why = "auto: " + ("; ".join(reasons) if reasons else "first choice")
        return _chosen(backend, why)
    reasons.append("onnxruntime: not installed")
    if _torch_available() and checkpoint is not None:
        from glioedge.runtime.backends.torch_backend import TorchBackend

        return _chosen(TorchBackend.from_checkpoint(checkpoint, device, bundle=bundle),
                       "auto: " + "; ".join(reasons))
    raise BackendError(
        "no inference backend is available (" + "; ".join(reasons) + "). Install one: "
        + INSTALL_HINTS[BackendName.ONNXRUNTIME] + ", or " + INSTALL_HINTS[BackendName.TENSORRT]
    )
