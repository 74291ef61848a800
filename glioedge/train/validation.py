"""Validation during training: sliding-window inference on held-out cases, BraTS region metrics.

Metrics are computed on the preprocessed grid (cropped, resampled to the target spacing), which is
what the network sees; the runtime's parity tests cover the way back to the original grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from glioedge.data.sliding_window import sliding_window_predict
from glioedge.metrics import evaluate_case, summarise
from glioedge.vocabulary import WINDOW_STEP


def torch_predictor(net: nn.Module, device: torch.device) -> callable:
    """Wrap a network (deep supervision off or on) as a numpy batch → logits function."""

    def predict(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = net(torch.from_numpy(np.ascontiguousarray(batch)).to(device))
            if isinstance(out, (list, tuple)):
                out = out[0]
            return out.float().cpu().numpy()

    return predict


def predict_case(
    net: nn.Module,
    image: np.ndarray,
    patch_size: Sequence[int],
    device: torch.device,
    num_classes: int = 4,
    step: float = WINDOW_STEP,
    batch_size: int = 2,
) -> np.ndarray:
    """Label map (argmax of the Gaussian-weighted window logits) for one (C, i, j, k) image."""
    was_training = net.training
    net.eval()
    try:
        logits = sliding_window_predict(
            image.astype(np.float32, copy=False),
            torch_predictor(net, device),
            tuple(patch_size),
            num_classes=num_classes,
            step_size=step,
            batch_size=batch_size,
        )
    finally:
        net.train(was_training)
    return logits.argmax(0).astype(np.uint8)


def validate(
    networks: dict[str, tuple[nn.Module, list[int]]],
    cases: Sequence[tuple[np.ndarray, np.ndarray, tuple[float, float, float]]],
    patch_size: Sequence[int],
    device: torch.device,
    step: float = WINDOW_STEP,
) -> dict[str, dict]:
    """Evaluate each network on each case.

    Args:
        networks: name → (network, indices of its input channels in the case data).
        cases: (data (C, i, j, k), label (i, j, k), spacing) per case.

    Returns:
        name → summary of BraTS metrics (mean/std Dice and HD95 per region).
    """
    results: dict[str, dict] = {}
    for name, (net, channels) in networks.items():
        per_case = []
        for data, label, spacing in cases:
            pred = predict_case(net, data[channels], patch_size, device, step=step)
            per_case.append(evaluate_case(pred, label, spacing))
        results[name] = summarise(per_case)
    return results
