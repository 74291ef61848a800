"""Sliding-window inference with the accumulation on the network's device (torch twin of
:func:`glioedge.data.sliding_window.sliding_window_predict`).

The numpy version brings every window's logits back to the host and blends them there; for a
240×240×155 case with 4 classes that is tens of windows × 8 MiB copied and summed on the CPU. Here
the volume goes to the device once (through page-locked memory), windows are cut, predicted,
weighted and summed on the device, and only the blended logits come back. Windows, padding,
Gaussian map and mirroring are the numpy module's own (:func:`~glioedge.data.sliding_window.plan_windows`),
so both give the same result; the test holds them equal on CPU tensors.

Imports torch: used only by the optional torch back-end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from glioedge.data.sliding_window import plan_windows
from glioedge.errors import BackendError, ConfigError
from glioedge.vocabulary import WINDOW_STEP

__all__ = ["sliding_window_predict_torch", "to_device"]

#: A batch ``(B, C, *patch)`` on the device → outputs ``(B, K, *patch)`` on the device.
TorchPredictFn = Callable[[torch.Tensor], torch.Tensor]


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """Host → device copy of a float32 array, through page-locked memory on CUDA (asynchronous)."""
    t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def sliding_window_predict_torch(
    image: np.ndarray,
    predict_fn: TorchPredictFn,
    patch_size: Sequence[int],
    *,
    num_classes: int,
    device: torch.device | str = "cpu",
    step_size: float = WINDOW_STEP,
    batch_size: int = 2,
    use_gaussian: bool = True,
    mirror_axes: tuple[int, ...] = (),
    accumulate_dtype: torch.dtype = torch.float32,
    on_progress: Callable[[int, int], None] | None = None,
    return_disagreement: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Blend window predictions on ``device``; arguments and result as the numpy version's, but
    ``predict_fn`` takes and returns device tensors and the result is a ``(K, *spatial)``
    float32 tensor on ``device`` (with ``return_disagreement``: and the ``(*spatial)`` blended
    :func:`~glioedge.data.sliding_window.mirror_disagreement`, computed on the device).

    Raises:
        InputError: ``image`` has the wrong number of axes or is empty.
        ConfigError: invalid patch, step, batch size, class count, mirror axes or dtype.
        BackendError: ``predict_fn`` returns the wrong shape.
    """
    np_dtype = {torch.float32: np.float32, torch.float64: np.float64}.get(accumulate_dtype)
    if np_dtype is None:
        raise ConfigError(f"accumulate_dtype must be float32 or float64, got {accumulate_dtype}")
    plan = plan_windows(image, patch_size, num_classes=num_classes, step_size=step_size,
                        batch_size=batch_size, use_gaussian=use_gaussian, mirror_axes=mirror_axes,
                        accumulate_dtype=np_dtype, return_disagreement=return_disagreement)
    dev = torch.device(device)
    patch, spatial = plan.patch, plan.image.shape[1:]
    data = to_device(plan.image, dev)
    weight = torch.from_numpy(np.array(plan.weight)).to(dev)
    logits = torch.zeros((plan.num_classes, *spatial), dtype=accumulate_dtype, device=dev)
    weight_sum = torch.zeros(spatial, dtype=accumulate_dtype, device=dev)
    disagreement = torch.zeros(spatial, dtype=accumulate_dtype, device=dev) if return_disagreement else None
    label_dtype = torch.uint8 if plan.num_classes <= 256 else torch.int32

    for first, chunk in plan.batches():
        batch = torch.stack([data[(slice(None), *sl)] for sl in chunk])
        expected = (len(chunk), plan.num_classes, *patch)
        total: torch.Tensor | None = None
        labels = (torch.empty((len(plan.flips), len(chunk), *patch), dtype=label_dtype, device=dev)
                  if return_disagreement else None)
        for i, axes in enumerate(plan.flips):
            y = predict_fn(torch.flip(batch, axes) if axes else batch)
            if tuple(y.shape) != expected:
                raise BackendError(f"predict_fn returned shape {tuple(y.shape)} for a batch of "
                                   f"shape {tuple(batch.shape)}; expected {expected}")
            y = (torch.flip(y, axes) if axes else y).to(accumulate_dtype)
            if labels is not None:
                labels[i] = y.argmax(dim=1)
            total = y.clone() if total is None else total.add_(y)
        assert total is not None  # flips always holds the identity
        if len(plan.flips) > 1:
            total /= len(plan.flips)
        share = None
        if labels is not None:  # as glioedge.data.sliding_window.mirror_disagreement
            share = (labels != total.argmax(dim=1).to(label_dtype)).to(accumulate_dtype).mean(dim=0)
        if use_gaussian:
            total *= weight
            if share is not None:
                share *= weight
        for b, sl in enumerate(chunk):
            logits[(slice(None), *sl)] += total[b]
            weight_sum[sl] += weight
            if disagreement is not None and share is not None:
                disagreement[sl] += share[b]
        if on_progress is not None:
            on_progress(first + len(chunk), len(plan.slices))

    logits /= weight_sum
    out = logits[(slice(None), *plan.revert[1:])].float().contiguous()
    if disagreement is None:
        return out
    disagreement /= weight_sum
    return out, disagreement[plan.revert[1:]].float().contiguous()
