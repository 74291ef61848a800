"""nnU-Net's own PlainConvUNet (dynamic-network-architectures), built from a :class:`NetworkPlan`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from glioedge._optional import require
from glioedge.train.plan import NetworkPlan

if TYPE_CHECKING:
    import torch
    from torch import nn


def build_unet(
    plan: NetworkPlan, in_channels: int, num_classes: int = 4, deep_supervision: bool = True
) -> nn.Module:
    """A 3-D PlainConvUNet as nnU-Net configures it: InstanceNorm, LeakyReLU, 2 convs per stage.

    Raises:
        MissingDependencyError: torch or dynamic-network-architectures is missing.
    """
    torch = require("torch", "building the U-Net")
    unet_mod = require(
        "dynamic_network_architectures.architectures.unet", "building nnU-Net's PlainConvUNet"
    )
    init_mod = require(
        "dynamic_network_architectures.initialization.weight_init", "initialising the U-Net"
    )
    nn = torch.nn
    net = unet_mod.PlainConvUNet(
        input_channels=in_channels,
        n_stages=plan.n_stages,
        features_per_stage=list(plan.features_per_stage),
        conv_op=nn.Conv3d,
        kernel_sizes=[[plan.kernel_size] * 3] * plan.n_stages,
        strides=[[s] * 3 for s in plan.strides],
        n_conv_per_stage=[plan.n_conv_per_stage] * plan.n_stages,
        num_classes=num_classes,
        n_conv_per_stage_decoder=[plan.n_conv_per_stage_decoder] * (plan.n_stages - 1),
        conv_bias=True,
        norm_op=nn.InstanceNorm3d,
        norm_op_kwargs={"eps": 1e-5, "affine": True},
        nonlin=nn.LeakyReLU,
        nonlin_kwargs={"negative_slope": plan.negative_slope, "inplace": True},
        deep_supervision=deep_supervision,
    )
    net.apply(init_mod.InitWeights_He(1e-2))
    return net


def forward_with_bottleneck(
    net: nn.Module, x: torch.Tensor
) -> tuple[list[torch.Tensor] | torch.Tensor, torch.Tensor]:
    """Run ``net`` once and also return its bottleneck (the encoder's last skip).

    Returns:
        (decoder output — a list highest-resolution-first under deep supervision —, bottleneck).
    """
    skips = net.encoder(x)
    return net.decoder(skips), skips[-1]


def set_deep_supervision(net: nn.Module, enabled: bool) -> None:
    """Switch the decoder between deep-supervision outputs and one full-resolution output."""
    net.decoder.deep_supervision = enabled
