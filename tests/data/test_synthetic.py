"""Synthetic cases: determinism, classes, the documented contrast table, anatomy in mm."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from glioedge.data.brats import Case, discover_cases, load_case
from glioedge.data.labels import LabelConvention
from glioedge.data.modalities import Modality
from glioedge.data.synthetic import SyntheticConfig, generate_cohort, make_case, write_brats_case
from tests.data.conftest import SMALL

#: documented tolerance: FLAIR and T1CE means of NCR and ED differ by < 10 %.
AMBIGUITY_TOL = 0.10


def _mean(case: Case, mod: Modality, cls: int) -> float:
    return float(case.images[mod][case.label == cls].mean())


def test_deterministic_per_seed(small_case: Case) -> None:
    again = make_case(3, SMALL)
    for mod in Modality:
        assert np.array_equal(again.images[mod], small_case.images[mod])
    assert np.array_equal(again.label, small_case.label)
    other = make_case(4, SMALL)
    assert not np.array_equal(other.label, small_case.label)


def test_classes_background_and_dtypes() -> None:
    for seed in range(3):
        case = make_case(seed)  # default grid
        assert set(np.unique(case.label).tolist()) == {0, 1, 2, 3}
        assert case.label.dtype == np.uint8
        brain = case.images[Modality.T1] > 0
        for mod in Modality:
            img = case.images[mod]
            assert img.dtype == np.float32
            assert img.shape == case.label.shape == (96, 96, 64)
            assert np.all(img[~brain] == 0.0)
        assert np.all(case.label[~brain] == 0)


def test_contrast_table() -> None:
    ncr, ed, et = 1, 2, 3
    for seed in range(4):
        c = make_case(seed)
        # T1/T2 separate NCR from ED ...
        assert _mean(c, Modality.T2, ncr) > 1.2 * _mean(c, Modality.T2, ed)
        assert _mean(c, Modality.T1, ncr) < 0.6 * _mean(c, Modality.T1, ed)
        # ... FLAIR and T1CE do not (ambiguous within the documented tolerance)
        for mod in (Modality.FLAIR, Modality.T1CE):
            a, b = _mean(c, mod, ncr), _mean(c, mod, ed)
            assert abs(a - b) / b < AMBIGUITY_TOL, (seed, mod, a, b)
        # enhancing rim is T1CE-bright, edema FLAIR-bright
        assert _mean(c, Modality.T1CE, et) > 1.5 * _mean(c, Modality.T1CE, ed)
        wm_like = c.images[Modality.FLAIR][(c.label == 0) & (c.images[Modality.T1] > 700)]
        assert _mean(c, Modality.FLAIR, ed) > 1.4 * float(wm_like.mean())


def test_anatomy_consistent_across_spacings() -> None:
    coarse = make_case(7, SyntheticConfig(shape=(48, 48, 32), spacing=(4.0, 4.0, 4.0)))
    fine = make_case(7, SyntheticConfig(shape=(96, 96, 64), spacing=(2.0, 2.0, 2.0)))

    def stats(case: Case) -> tuple[float, float, np.ndarray]:
        vox = float(np.prod(case.spacing))
        brain = float((case.images[Modality.T1] > 0).sum()) * vox
        tumour_idx = np.argwhere(case.label > 0)
        tumour = len(tumour_idx) * vox
        centroid = (case.affine @ np.append(tumour_idx.mean(axis=0), 1.0))[:3]
        return brain, tumour, centroid

    b1, t1, c1 = stats(coarse)
    b2, t2, c2 = stats(fine)
    assert abs(b1 - b2) / b2 < 0.03
    assert abs(t1 - t2) / t2 < 0.15
    assert np.linalg.norm(c1 - c2) < 3.0


def test_write_and_read_back(tmp_path: Path, small_case: Case) -> None:
    for conv in LabelConvention:
        write_brats_case(small_case, tmp_path / conv.value, conv)
        (files,) = discover_cases(tmp_path / conv.value)
        assert files.convention is conv
        back = load_case(files)
        assert np.array_equal(back.label, small_case.label)
        assert np.allclose(back.affine, small_case.affine, atol=1e-5)
        assert np.allclose(back.images[Modality.FLAIR], small_case.images[Modality.FLAIR])


def test_generate_cohort(tmp_path: Path) -> None:
    paths = generate_cohort(tmp_path, 2, seed=1, config=SMALL)
    assert [p.name for p in paths] == ["Synth_00000", "Synth_00001"]
    assert len(discover_cases(tmp_path)) == 2
