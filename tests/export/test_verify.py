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
    inputs, source = V.verification_inputs(2, (32, 32, 32), modalities=("flair", "t1ce"))
    assert source == "smooth_random"  # no training cases: fall back, say so
    assert {k: v.shape for k, v in inputs.items()} == {
        "random": (2, 2, 32, 32, 32), "case": (2, 2, 32, 32, 32)
    }
    assert all(v.dtype == np.float32 for v in inputs.values())


def test_verification_case_is_a_training_case_patch(tmp_path: Path) -> None:
    """The case patch is cut around the tumour of the training run's first preprocessed case,
    with the student's channels picked from the case's channel order (no synthetic data in
    export: the runtime-side rule of tests/test_architecture.py)."""
    from glioedge.data.brats import discover_cases
    from glioedge.data.dataset import load_preprocessed, preprocess_cohort
    from glioedge.data.modalities import parse_modalities
    from glioedge.data.preprocess import PreprocessParams
    from glioedge.synth.cohort import SyntheticConfig, generate_cohort

    generate_cohort(tmp_path / "data", 1, seed=3, config=SyntheticConfig(shape=(64, 64, 48)))
    channels = ("t2", "flair", "t1ce")
    cases = discover_cases(tmp_path / "data", modalities=parse_modalities(list(channels)))
    params = PreprocessParams(modalities=channels, target_spacing=(2.0, 2.0, 2.0))
    (path,) = preprocess_cohort(cases, params, tmp_path / "pre")
    inputs, source = V.verification_inputs(
        2, (16, 16, 16), modalities=("flair", "t1ce"), cases=[tmp_path / "missing.npy", path],
        channel_modalities=channels, batch=1,
    )
    assert source == f"training case {path.stem}"  # the unreadable first file is skipped
    case = inputs["case"]
    assert case.shape == (1, 2, 16, 16, 16) and np.isfinite(case).all()
    pre = load_preprocessed(path)
    centre = np.argwhere(np.asarray(pre.label) > 0).mean(0).round().astype(int)
    box = tuple(slice(int(np.clip(c - 8, 0, n - 16)), int(np.clip(c - 8, 0, n - 16)) + 16)
                for c, n in zip(centre, pre.data.shape[1:], strict=True))
    np.testing.assert_array_equal(case[0], np.asarray(pre.data)[[1, 2]][(slice(None), *box)])
    _, fallback = V.verification_inputs(2, (16, 16, 16), modalities=("flair", "t1ce"), cases=[path],
                                        channel_modalities=("t1", "t2"))
    assert fallback == "smooth_random"  # the cases lack the student's channels


