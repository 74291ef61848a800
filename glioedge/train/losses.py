"""Losses of single-stage KD: nnU-Net's CE+Dice with deep supervision, Barlow Twins, logit KD."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def deep_supervision_weights(n_outputs: int) -> np.ndarray:
    """nnU-Net v2's weights: 1/2^i per output (highest resolution first), lowest 0, normalised."""
    weights = np.array([1 / (2**i) for i in range(n_outputs)], dtype=np.float64)
    if n_outputs > 1:
        weights[-1] = 0.0
    return weights / weights.sum()


def downsample_targets(target: torch.Tensor, shapes: Sequence[torch.Size]) -> list[torch.Tensor]:
    """Nearest-exact downsampling of a (B, 1, *spatial) label map to each output's size (nnU-Net)."""
    out = []
    t = target.float()
    for shape in shapes:
        if tuple(shape) == tuple(target.shape[2:]):
            out.append(target)
        else:
            out.append(F.interpolate(t, size=tuple(shape), mode="nearest-exact").long())
    return out


class SoftDiceLoss(nn.Module):
    """nnU-Net's memory-efficient soft Dice: batch Dice, background excluded, smooth 1e-5."""

    def __init__(self, smooth: float = 1e-5, batch_dice: bool = True, do_bg: bool = False) -> None:
        super().__init__()
        self.smooth = smooth
        self.batch_dice = batch_dice
        self.do_bg = do_bg

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logits.float(), dim=1)
        onehot = torch.zeros_like(probs).scatter_(1, target.long(), 1.0)
        if not self.do_bg:
            probs, onehot = probs[:, 1:], onehot[:, 1:]
        axes = tuple(range(2, probs.ndim))
        if self.batch_dice:
            axes = (0, *axes)
        intersect = (probs * onehot).sum(axes)
        denom = probs.sum(axes) + onehot.sum(axes)
        dc = (2 * intersect + self.smooth) / torch.clip(denom + self.smooth, min=1e-8)
        return -dc.mean()


class DiceCELoss(nn.Module):
    """CE + soft Dice with weights 1:1, as nnU-Net's ``DC_and_CE_loss``."""

    def __init__(self, weight_ce: float = 1.0, weight_dice: float = 1.0) -> None:
        super().__init__()
        self.weight_ce = weight_ce
        self.weight_dice = weight_dice
        self.dice = SoftDiceLoss()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(logits.float(), target[:, 0].long())
        return self.weight_ce * ce + self.weight_dice * self.dice(logits, target)


class DeepSupervisionLoss(nn.Module):
    """Weighted sum of a loss over deep-supervision outputs (highest resolution first)."""

    def __init__(self, loss: nn.Module, n_outputs: int) -> None:
        super().__init__()
        self.loss = loss
        self.register_buffer(
            "weights", torch.tensor(deep_supervision_weights(n_outputs), dtype=torch.float32)
        )

    def forward(self, outputs: Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        targets = downsample_targets(target, [o.shape[2:] for o in outputs])
        total = outputs[0].new_zeros((), dtype=torch.float32)
        # Every output enters the graph, even at weight 0, so that DDP sees a gradient (of zero)
        # for the lowest-resolution head instead of failing on an unused parameter.
        for w, out, tgt in zip(self.weights, outputs, targets, strict=True):
            total = total + w * self.loss(out, tgt)
        return total


def _world_size() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_samples(x: torch.Tensor) -> torch.Tensor:
    """Concatenate the (N, D) samples of every rank along N, differentiably.

    ``torch.distributed.nn.all_gather`` sends each rank the gradient of the whole objective with
    respect to its own samples (summed over ranks, then averaged by DDP), so the gradients equal
    those of one process holding the whole batch. Every rank must pass the same shape.
    """
    from torch.distributed.nn import all_gather

    return torch.cat(all_gather(x), dim=0)


def barlow_twins_loss(
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    lambda_offdiag: float = 5e-3,
    eps: float = 1e-5,
    *,
    gather: bool | None = None,
) -> torch.Tensor:
    """Barlow Twins loss between two (B, D, *spatial) feature maps.

    Every bottleneck voxel of the batch is one sample: each of the D channels is standardised over
    the N = B·∏spatial samples, C = z_aᵀ z_b / N is the D×D cross-correlation, and the loss is
    Σ_i (1 − C_ii)² + λ_off Σ_{i≠j} C_ij².

    It is computed in FP32 with autocast disabled (``.float()`` alone does not escape autocast,
    which would run the correlation matmul in FP16/BF16). Under DDP the samples of every rank are
    gathered first (``gather=None``: whenever a process group of more than one rank exists), so
    the statistics, hence the objective, are those of the global batch whatever the number of
    GPUs; every rank must then call it (it is a collective).
    """
    if z_a.shape != z_b.shape:
        raise ValueError(f"Barlow Twins needs equal shapes, got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
    d = z_a.shape[1]
    if gather is None:
        gather = _world_size() > 1
    with torch.autocast(device_type=z_a.device.type, enabled=False):
        a = z_a.float().movedim(1, -1).reshape(-1, d)
        b = z_b.float().movedim(1, -1).reshape(-1, d)
        if gather:
            a, b = gather_samples(a), gather_samples(b)
        n = a.shape[0]
        a = (a - a.mean(0)) / (a.std(0, unbiased=False) + eps)
        b = (b - b.mean(0)) / (b.std(0, unbiased=False) + eps)
        c = a.T @ b / n
        on_diag = (torch.diagonal(c) - 1).pow(2).sum()
        off_diag = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
        return on_diag + lambda_offdiag * off_diag


class Projector(nn.Module):
    """A 1×1×1-convolution MLP head mapping bottleneck features into the Barlow Twins space."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv3d(in_channels, hidden, kernel_size=1),
            nn.InstanceNorm3d(hidden, affine=True),
            nn.LeakyReLU(0.01, inplace=True),
            nn.Conv3d(hidden, out_channels, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def logit_kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0
) -> torch.Tensor:
    """Hinton's KL(teacher ‖ student) on temperature-softened voxel class distributions, × T²."""
    t = temperature
    log_p_s = F.log_softmax(student_logits.float() / t, dim=1)
    p_t = F.softmax(teacher_logits.detach().float() / t, dim=1)
    kl = (p_t * (torch.log(p_t.clamp_min(1e-8)) - log_p_s)).sum(1).mean()
    return kl * t * t
