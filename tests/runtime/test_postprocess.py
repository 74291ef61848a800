"""The small-ET rule and the volumes, on hand-made label maps."""

from __future__ import annotations

import numpy as np
import pytest

from glioedge.bundle import PostprocessParams
from glioedge.runtime.postprocess import apply_postprocess, tumour_volumes_ml
from glioedge.vocabulary import ED, ET, NCR


def _labels(et_voxels: int) -> np.ndarray:
    lab = np.zeros((20, 20, 20), np.uint8)
    lab[2:12, 2:12, 2:12] = ED  # 1000
    lab[4:8, 4:8, 4:8] = NCR  # 64
    lab.reshape(-1)[np.flatnonzero(lab.reshape(-1) == ED)[:et_voxels]] = ET
    return lab


def test_small_et_becomes_ncr() -> None:
    lab = _labels(et_voxels=10)
    out, info = apply_postprocess(lab, (1, 1, 1), PostprocessParams(et_min_voxels=50), (1, 1, 1))
    assert info.et_relabelled and info.et_voxels == 10
    assert not (out == ET).any()
    assert (out == NCR).sum() == 64 + 10
    assert (lab == ET).sum() == 10  # input untouched


def test_large_et_is_kept() -> None:
    lab = _labels(et_voxels=60)
    out, info = apply_postprocess(lab, (1, 1, 1), PostprocessParams(et_min_voxels=50), (1, 1, 1))
    assert not info.et_relabelled
    assert np.array_equal(out, lab)


@pytest.mark.parametrize("params, enabled", [(PostprocessParams(et_min_voxels=0), True),
                                             (PostprocessParams(et_min_voxels=50), False)])
def test_rule_disabled(params: PostprocessParams, enabled: bool) -> None:
    lab = _labels(et_voxels=10)
    out, info = apply_postprocess(lab, (1, 1, 1), params, (1, 1, 1), enabled=enabled)
    assert np.array_equal(out, lab) and not info.et_relabelled and not info.applied


def test_threshold_is_physical_across_grids() -> None:
    """50 voxels at 1 mm³ = 0.05 ml; on a 2 mm grid 10 ET voxels are 0.08 ml: kept."""
    lab = _labels(et_voxels=10)
    out, info = apply_postprocess(lab, (2, 2, 2), PostprocessParams(et_min_voxels=50), (1, 1, 1))
    assert info.threshold_ml == pytest.approx(0.05) and info.et_ml == pytest.approx(0.08)
    assert not info.et_relabelled and np.array_equal(out, lab)
    out, info = apply_postprocess(lab, (1, 1, 1), PostprocessParams(et_min_voxels=2),
                                  (2, 2, 2))  # 16 mm³ threshold > 10 mm³ of ET
    assert info.et_relabelled


def test_replacement_class_from_manifest() -> None:
    lab = _labels(et_voxels=5)
    out, _ = apply_postprocess(lab, (1, 1, 1), PostprocessParams(50, et_replacement_class=2), (1, 1, 1))
    assert (out == ED).sum() == (lab == ED).sum() + 5


def test_volumes_match_hand_counts() -> None:
    lab = _labels(et_voxels=30)
    spacing = (0.9, 1.1, 2.5)
    vox_ml = 0.9 * 1.1 * 2.5 / 1000
    vols = tumour_volumes_ml(lab, spacing)
    n = {c: int((lab == c).sum()) for c in (NCR, ED, ET)}
    assert n == {NCR: 64, ED: 1000 - 64 - 30, ET: 30}
    assert vols["ET"] == pytest.approx(30 * vox_ml)
    assert vols["NCR"] == pytest.approx(64 * vox_ml)
    assert vols["ED"] == pytest.approx(906 * vox_ml)
    assert vols["TC"] == pytest.approx(94 * vox_ml)
    assert vols["WT"] == pytest.approx(1000 * vox_ml)


def test_tumour_outside_the_brain_is_removed_and_reported() -> None:
    """Oedema the network "finds" in the background beside the brain becomes background (before
    the small-ET rule, so ET outside does not count towards it); the input is untouched; with
    post-processing off nothing is removed but the share outside is still reported."""
    lab = _labels(et_voxels=60)
    brain = np.zeros(lab.shape, bool)
    brain[:, :, :10] = True  # the tumour's slab k = 10..11 is outside: 200 of 1000 voxels
    tumour_before = int((lab > 0).sum())
    out, info = apply_postprocess(lab, (1, 1, 2), PostprocessParams(et_min_voxels=0), (1, 1, 1),
                                  brain_mask=brain)
    outside = int(((lab > 0) & ~brain).sum())
    assert outside == 200 and not (out[~brain] > 0).any()
    assert np.array_equal(out[brain], lab[brain])
    assert info.outside_brain_ml == pytest.approx(outside * 2 / 1000)
    assert info.outside_brain_fraction == pytest.approx(outside / tumour_before)
    assert int((lab > 0).sum()) == tumour_before  # input untouched
    kept, off = apply_postprocess(lab, (1, 1, 2), PostprocessParams(et_min_voxels=0), (1, 1, 1),
                                  enabled=False, brain_mask=brain)
    assert np.array_equal(kept, lab) and off.outside_brain_ml == 0.0
    assert off.outside_brain_fraction == pytest.approx(outside / tumour_before)
    # ET outside the brain does not save a small ET inside from the rule
    lab2 = _labels(et_voxels=0)
    lab2[2:10, 2:10, 15] = ET  # 64 ET voxels outside
    lab2[5, 5, 5] = ET  # 1 inside
    out2, info2 = apply_postprocess(lab2, (1, 1, 1), PostprocessParams(et_min_voxels=50), (1, 1, 1),
                                    brain_mask=np.pad(np.ones((20, 20, 12), bool), ((0, 0), (0, 0), (0, 8))))
    assert info2.et_voxels == 1 and info2.et_relabelled and not (out2 == ET).any()
