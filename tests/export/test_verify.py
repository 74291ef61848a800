"""Parity metrics and the loud failure of an export whose parity is too poor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glioedge.errors import ModelError
from glioedge.export import verify as V


def test_compare_logits_counts_agreement_and_dice() -> None:
    ref = np.zeros((1, 4, 2, 2, 1), dtype=np.float32)
    ref[0, 1] = 1.0  # every voxel NCR
    test = ref.copy()
    test[0, 2, 0, 0, 0] = 2.0  # one voxel ED instead
    p = V.compare_logits(ref, test, ["background", "NCR", "ED", "ET"])
    assert p.max_abs_logit == 2.0
    assert p.agreement == 0.75
    assert p.dice_per_class == {"NCR": pytest.approx(6 / 7), "ED": 0.0, "ET": None}
    assert p.dice == pytest.approx((6 / 7 + 0.0) / 2)


def test_compare_logits_refuses_nan_and_shape_mismatch() -> None:
    ref = np.zeros((1, 4, 2, 2, 2), dtype=np.float32)
    with pytest.raises(ModelError, match="NaN"):
        V.compare_logits(ref, np.full_like(ref, np.nan))
    with pytest.raises(ModelError, match="shape"):
        V.compare_logits(ref, ref[:, :3])


def test_thresholds_fail_loudly() -> None:
    p = V.Parity(0.5, 0.1, 0.9, 0.8, {}, 10)
    with pytest.raises(ModelError, match=r"max \|Δlogit\| 0.5 > 0.001.*agreement 90.000 %"):
        V.Thresholds().check(p, "ORT FP32")
    V.Thresholds(max_abs_logit=None, min_agreement=0.5).check(p, "ORT FP16")


def test_export_fails_and_leaves_no_bundle_when_parity_is_too_poor(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    from glioedge.export.pipeline import ExportOptions, export_bundle

    out = tmp_path / "bundle"
    opts = ExportOptions(fp16=False, fp32=V.Thresholds(max_abs_logit=0.0, min_agreement=None))
    with pytest.raises(ModelError, match="does not match PyTorch"):
        export_bundle(tiny_checkpoint, out, opts)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # the temporary directory is gone too


def test_verification_inputs_have_random_and_case_patches() -> None:
    inputs, source = V.verification_inputs(
        2, (32, 32, 32), modalities=("flair", "t1ce"), preprocess={"bogus": 1}
    )
    assert source == "smooth_random"  # the dict is not PreprocessParams: fall back, say so
    assert {k: v.shape for k, v in inputs.items()} == {
        "random": (2, 2, 32, 32, 32), "case": (2, 2, 32, 32, 32)
    }
    assert all(v.dtype == np.float32 for v in inputs.values())


def test_verification_case_is_the_preprocessed_synthetic_case() -> None:
    """With real preprocessing parameters the case patch comes from glioedge.synth's cohort
    generator (the documented export → synth exception), not the smooth-noise fallback."""
    from glioedge.data.preprocess import PreprocessParams

    params = PreprocessParams(("flair", "t1ce"), target_spacing=(2.0, 2.0, 2.0))
    inputs, source = V.verification_inputs(
        2, (32, 32, 32), modalities=("flair", "t1ce"), preprocess=params.to_dict(), batch=1
    )
    assert source == "synthetic.make_case+preprocess"
    case = inputs["case"]
    assert case.shape == (1, 2, 32, 32, 32) and np.isfinite(case).all()
    assert case.std() > 0.1  # a z-scored brain patch, not zeros
