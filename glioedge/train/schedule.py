"""nnU-Net's optimiser and polynomial learning-rate schedule."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from glioedge.train.config import OptimConfig


def make_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimConfig) -> torch.optim.SGD:
    """SGD with Nesterov momentum 0.99 and weight decay 3e-5 (nnU-Net v2)."""
    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True
    )


def poly_lr(initial_lr: float, epoch: int, max_epochs: int, exponent: float = 0.9) -> float:
    """lr · (1 − epoch / max_epochs)^exponent, as nnU-Net's ``PolyLRScheduler`` (per epoch)."""
    return initial_lr * (1 - epoch / max_epochs) ** exponent


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
