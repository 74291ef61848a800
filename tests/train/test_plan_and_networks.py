"""Network plans and nnU-Net's PlainConvUNet as built from them."""

from __future__ import annotations

import pytest
import torch

from glioedge.errors import ConfigError
from glioedge.train.networks import build_unet, forward_with_bottleneck, set_deep_supervision
from glioedge.train.plan import NNUNET, PRESETS, TINY, NetworkPlan, get_preset


def test_plan_round_trips_through_dict() -> None:
    for plan in PRESETS.values():
        assert NetworkPlan.from_dict(plan.to_dict()) == plan


def test_nnunet_preset_is_brats_3d_fullres() -> None:
    assert NNUNET.n_stages == 6
    assert NNUNET.features_per_stage == (32, 64, 128, 256, 320, 320)
    assert NNUNET.patch_size == (128, 128, 128)


def test_patch_must_be_multiple_of_strides() -> None:
    with pytest.raises(ConfigError, match="multiple of 8"):
        TINY.with_patch((36, 32, 32))


def test_nnunet_preset_refuses_a_patch_that_collapses_the_bottleneck() -> None:
    with pytest.raises(ConfigError, match="collapses"):
        NNUNET.with_patch((32, 32, 32))


def test_unknown_preset_lists_choices() -> None:
    with pytest.raises(ConfigError, match="nnunet"):
        get_preset("huge")


def test_unet_outputs_deep_supervision_and_bottleneck() -> None:
    net = build_unet(TINY, in_channels=2)
    x = torch.randn(1, 2, 32, 32, 32)
    outs, z = forward_with_bottleneck(net, x)
    assert [tuple(o.shape) for o in outs] == [(1, 4, 32, 32, 32), (1, 4, 16, 16, 16), (1, 4, 8, 8, 8)]
    assert tuple(z.shape) == (1, TINY.bottleneck_channels, 4, 4, 4)
    set_deep_supervision(net, False)
    net.eval()
    with torch.no_grad():
        full = net(x)
        outs_eval, _ = forward_with_bottleneck(net, x)
    assert tuple(full.shape) == (1, 4, 32, 32, 32)
    torch.testing.assert_close(full, outs_eval)


def test_unet_uses_instance_norm_and_leaky_relu() -> None:
    net = build_unet(TINY, in_channels=4)
    kinds = {type(m).__name__ for m in net.modules()}
    assert {"InstanceNorm3d", "LeakyReLU", "Conv3d", "ConvTranspose3d"} <= kinds
    assert "BatchNorm3d" not in kinds
