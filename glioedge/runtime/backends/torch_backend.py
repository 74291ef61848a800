"""PyTorch back-end: the student network of a training checkpoint (safetensors).

Imported only when asked for; the rest of the runtime never imports torch. On a GPU it is worth
deploying: cuDNN autotuning for the fixed window shape, optional FP16 autocast (InstanceNorm and
softmax stay FP32 under autocast), optional ``torch.compile``, page-locked transfers, and
:meth:`TorchBackend.sliding_window`, which blends the windows on the device
(:mod:`.torch_window`) so that only the blended logits come back to the host.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from glioedge._optional import require
from glioedge.bundle import Bundle, sha256_file
from glioedge.errors import ConfigError, ModelError
from glioedge.vocabulary import WINDOW_STEP

logger = logging.getLogger(__name__)


class TorchBackend:
    """Run a ``torch.nn.Module`` in eval mode under ``inference_mode``.

    Args:
        net: the network (its first output is taken when it returns several).
        device: ``"cpu"``, ``"cuda[:N]"`` or ``None`` (the GPU when there is one).
        fp16: FP16 autocast (CUDA only; ignored on the CPU).
        compile_mode: ``torch.compile`` mode (e.g. ``"max-autotune"``, or ``"reduce-overhead"``
            for CUDA graphs); ``None``: eager.
    """

    def __init__(self, net: Any, device: str | None = None, *, fp16: bool = False,
                 compile_mode: str | None = None) -> None:
        """Wrap a network.

        Raises:
            MissingDependencyError: torch is not installed.
        """
        self._torch = torch = require("torch", "the PyTorch reference backend")
        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._device = torch.device(dev)
        self._net = net.to(self._device).eval()
        self.fp16 = bool(fp16) and self._device.type == "cuda"
        if self._device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # one window shape: tune once, reuse
        self._forward = torch.compile(self._net, mode=compile_mode) if compile_mode else self._net
        self.name = f"torch-{self._device.type}" + ("-fp16" if self.fp16 else "")

    @classmethod
    def from_checkpoint(cls, checkpoint: Path, device: str | None = None,
                        bundle: Bundle | None = None, **options: Any) -> TorchBackend:
        """The student of a checkpoint (no pickle: safetensors + JSON).

        Args:
            checkpoint: checkpoint directory (``checkpoint.json`` + ``student.safetensors``).
            device: ``"cpu"``, ``"cuda[:N]"`` or ``None`` (GPU when available).
            bundle: when given, the checkpoint must be the one the bundle was exported from.
            options: ``fp16`` / ``compile_mode`` (see the class).

        Raises:
            MissingDependencyError: torch is not installed.
            ModelError: the checkpoint is unusable or is not the bundle's.
        """
        from glioedge.train.checkpoint import load_student

        if bundle is not None:
            expected = bundle.manifest.provenance.get("student_weights_sha256")
            weights = Path(checkpoint) / "student.safetensors"
            if expected and weights.is_file() and sha256_file(weights) != expected:
                raise ModelError(
                    f"{checkpoint}: student weights differ from those bundle "
                    f"{bundle.manifest.bundle_id} was exported from"
                )
        net, _ = load_student(Path(checkpoint), deep_supervision=False)
        return cls(net, device, **options)

    def _autocast(self) -> Any:
        torch = self._torch
        if self.fp16:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def _net_out(self, x: Any) -> Any:
        with self._autocast():
            out = self._forward(x)
        if isinstance(out, list | tuple):
            out = out[0]
        return out.float()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Float32 logits for a float32 batch ``(B, C, X, Y, Z)``."""
        from glioedge.runtime.backends.torch_window import to_device

        with self._torch.inference_mode():
            return self._net_out(to_device(batch, self._device)).cpu().numpy()

    def sliding_window(self, image: np.ndarray, patch_size: Sequence[int], *, num_classes: int,
                       step_size: float = WINDOW_STEP, batch_size: int = 2,
                       mirror_axes: tuple[int, ...] = (),
                       on_progress: Callable[[int, int], None] | None = None,
                       return_disagreement: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Blended logits ``(K, *spatial)`` of a whole image, accumulated on the device (with
        ``return_disagreement``: and the blended mirror disagreement ``(*spatial)``, as the numpy
        sliding window's).

        Raises:
            ConfigError / InputError / BackendError: as the numpy sliding window.
        """
        from glioedge.runtime.backends.torch_window import sliding_window_predict_torch

        if self._net is None:
            raise ConfigError("the torch backend is closed")
        with self._torch.inference_mode():
            logits = sliding_window_predict_torch(
                image, self._net_out, patch_size, num_classes=num_classes, device=self._device,
                step_size=step_size, batch_size=batch_size, mirror_axes=mirror_axes,
                on_progress=on_progress, return_disagreement=return_disagreement,
            )
            if isinstance(logits, tuple):
                return logits[0].cpu().numpy(), logits[1].cpu().numpy()
            return logits.cpu().numpy()

    def close(self) -> None:
        """Release the network."""
        self._net = None
        self._forward = None
