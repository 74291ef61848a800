"""PyTorch reference back-end: the student network of a training checkpoint (safetensors).

Imported only when asked for; the rest of the runtime never imports torch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from glioedge._optional import require
from glioedge.bundle import Bundle, sha256_file
from glioedge.errors import ModelError

logger = logging.getLogger(__name__)


class TorchBackend:
    """Run a ``torch.nn.Module`` in eval mode under ``inference_mode``."""

    def __init__(self, net: Any, device: str | None = None) -> None:
        """Wrap a network.

        Raises:
            MissingDependencyError: torch is not installed.
        """
        self._torch = require("torch", "the PyTorch reference backend")
        dev = device or ("cuda" if self._torch.cuda.is_available() else "cpu")
        self._device = self._torch.device(dev)
        self._net = net.to(self._device).eval()
        self.name = f"torch-{self._device.type}"

    @classmethod
    def from_checkpoint(cls, checkpoint: Path, device: str | None = None,
                        bundle: Bundle | None = None) -> TorchBackend:
        """The student of a checkpoint (no pickle: safetensors + JSON).

        Args:
            checkpoint: checkpoint directory (``checkpoint.json`` + ``student.safetensors``).
            device: ``"cpu"``, ``"cuda[:N]"`` or ``None`` (GPU when available).
            bundle: when given, the checkpoint must be the one the bundle was exported from.

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
        return cls(net, device)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Float32 logits for a float32 batch ``(B, C, X, Y, Z)``."""
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self._device)
            out = self._net(x)
            if isinstance(out, list | tuple):
                out = out[0]
            return out.float().cpu().numpy()

    def close(self) -> None:
        """Release the network."""
        self._net = None
