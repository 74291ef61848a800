"""Losses: Barlow Twins, deep-supervision weights, CE+Dice, logit KD."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from glioedge.train.losses import (
    DeepSupervisionLoss,
    DiceCELoss,
    SoftDiceLoss,
    barlow_twins_loss,
    deep_supervision_weights,
    downsample_targets,
    logit_kd_loss,
)


def _features(seed: int, b: int = 2, d: int = 16, s: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, s, s, s, generator=g)


def test_barlow_twins_is_zero_for_identical_decorrelated_features() -> None:
    # Orthogonal columns → after standardisation C is exactly the identity.
    n, d = 64, 8
    q, _ = torch.linalg.qr(torch.randn(n, d, generator=torch.Generator().manual_seed(0)))
    q = q - q.mean(0)
    z = q.T.reshape(1, d, 4, 4, 4)
    # Re-orthogonalise after centring so that the standardised cross-correlation is I.
    a = z.movedim(1, -1).reshape(-1, d)
    a = (a - a.mean(0)) / a.std(0, unbiased=False)
    u, _, vh = torch.linalg.svd(a, full_matrices=False)
    white = (u @ vh) * np.sqrt(n)
    white = white - white.mean(0)
    z = white.T.reshape(1, d, 4, 4, 4).contiguous()
    loss = barlow_twins_loss(z, z.clone())
    assert float(loss) < 1e-3


def test_barlow_twins_identical_random_features_leave_only_off_diagonal_term() -> None:
    z = _features(1)
    loss = barlow_twins_loss(z, z.clone(), lambda_offdiag=5e-3)
    no_off = barlow_twins_loss(z, z.clone(), lambda_offdiag=0.0)
    assert float(no_off) < 1e-6  # C_ii = 1 exactly for identical standardised inputs
    assert float(loss) > float(no_off)


def test_barlow_twins_grows_with_decorrelation() -> None:
    z = _features(2)
    noise = _features(3)
    losses = [float(barlow_twins_loss(z, (1 - a) * z + a * noise)) for a in (0.0, 0.3, 0.6, 1.0)]
    assert losses == sorted(losses)
    assert losses[-1] > 5 * losses[1]


def test_barlow_twins_is_invariant_to_channel_scale_and_shift() -> None:
    z = _features(4)
    other = _features(5)
    ref = barlow_twins_loss(z, other)
    scaled = barlow_twins_loss(3 * z + 7, 0.5 * other - 2)
    assert torch.allclose(ref, scaled, rtol=1e-4)


def test_barlow_twins_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="equal shapes"):
        barlow_twins_loss(_features(0, d=8), _features(0, d=16))


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        # nnU-Net v2: [1, 1/2, 1/4, ..., 0] normalised (lowest resolution weighted 0)
        (3, [1 / 1.5, 0.5 / 1.5, 0.0]),
        (5, [1 / 1.875, 0.5 / 1.875, 0.25 / 1.875, 0.125 / 1.875, 0.0]),
    ],
)
def test_deep_supervision_weights_match_nnunet(n: int, expected: list[float]) -> None:
    np.testing.assert_allclose(deep_supervision_weights(n), expected)
    assert deep_supervision_weights(n).sum() == pytest.approx(1.0)


# nnU-Net v2 (nnunetv2/training/nnUNetTrainer/nnUNetTrainer.py, _build_loss): output i (0 = full
# resolution) gets 1/2^i, the lowest-resolution output 0 (outside DDP), then they are normalised to
# sum 1. The values below are those weights worked out by hand as exact fractions — not recomputed
# with the formula — for every depth the presets use (tiny 4 stages … nnunet 6 stages → 3 … 5
# outputs) and one either side.
NNUNET_DS_WEIGHTS: dict[int, list[float]] = {
    2: [1.0, 0.0],
    3: [2 / 3, 1 / 3, 0.0],
    4: [4 / 7, 2 / 7, 1 / 7, 0.0],
    5: [8 / 15, 4 / 15, 2 / 15, 1 / 15, 0.0],
    6: [16 / 31, 8 / 31, 4 / 31, 2 / 31, 1 / 31, 0.0],
}


@pytest.mark.parametrize("n", sorted(NNUNET_DS_WEIGHTS))
def test_deep_supervision_weights_are_nnunets_published_values(n: int) -> None:
    np.testing.assert_allclose(deep_supervision_weights(n), NNUNET_DS_WEIGHTS[n], rtol=1e-12, atol=0)


def test_downsample_targets_nearest() -> None:
    t = torch.zeros(1, 1, 8, 8, 8, dtype=torch.long)
    t[..., 4:, 4:, 4:] = 3
    small = downsample_targets(t, [torch.Size((8, 8, 8)), torch.Size((4, 4, 4))])
    assert small[0] is t
    assert small[1].shape == (1, 1, 4, 4, 4)
    assert set(small[1].unique().tolist()) == {0, 3}
    assert int((small[1] == 3).sum()) == 8


def test_dice_ce_is_low_for_confident_correct_logits_and_high_for_wrong() -> None:
    target = torch.randint(0, 4, (2, 1, 8, 8, 8), generator=torch.Generator().manual_seed(0))
    good = torch.nn.functional.one_hot(target[:, 0], 4).movedim(-1, 1).float() * 20
    bad = torch.roll(good, 1, dims=1)
    loss = DiceCELoss()
    assert float(loss(good, target)) < -0.99 + 1e-3  # CE ≈ 0, Dice ≈ -1
    assert float(loss(bad, target)) > 5


def test_soft_dice_ignores_background_by_default() -> None:
    target = torch.zeros(1, 1, 4, 4, 4, dtype=torch.long)
    target[..., :2, :, :] = 1
    logits = torch.zeros(1, 4, 4, 4, 4)
    logits[:, 1] = 60 * (target[:, 0] == 1)
    logits[:, 0] = 60 * (target[:, 0] == 0)
    # classes 2, 3 are empty in target and prediction → smooth term gives them Dice 1
    assert float(SoftDiceLoss()(logits, target)) == pytest.approx(-1.0, abs=1e-4)


def test_deep_supervision_loss_ignores_lowest_output() -> None:
    target = torch.randint(0, 4, (1, 1, 8, 8, 8), generator=torch.Generator().manual_seed(1))
    outs = [torch.randn(1, 4, 8, 8, 8), torch.randn(1, 4, 4, 4, 4), torch.randn(1, 4, 2, 2, 2)]
    ds = DeepSupervisionLoss(DiceCELoss(), 3)
    base = float(ds(outs, target))
    outs[2] = outs[2] * 100  # weight 0 → no effect
    assert float(ds(outs, target)) == pytest.approx(base)
    outs[1] = outs[1] * 100
    assert float(ds(outs, target)) != pytest.approx(base)


def test_logit_kd_zero_for_equal_logits_positive_otherwise() -> None:
    a = torch.randn(2, 4, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    assert float(logit_kd_loss(a, a.clone())) == pytest.approx(0.0, abs=1e-6)
    assert float(logit_kd_loss(a, torch.flip(a, dims=[1]))) > 0.01
