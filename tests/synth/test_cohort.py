"""Synthetic cases: determinism, classes, the documented contrast table, anatomy in mm."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from glioedge.data.brats import Case, discover_cases, load_case
from glioedge.data.labels import LabelConvention
from glioedge.data.modalities import Modality
from glioedge.errors import ConfigError
from glioedge.synth.cohort import (
    BRATS_LIKE_CONTRAST,
    SyntheticConfig,
    cohort_config,
    generate_cohort,
    make_case,
    write_brats_case,
)
from tests.data.conftest import SMALL

#: documented tolerance: FLAIR and T1CE means of NCR and ED differ by < 10 %.
AMBIGUITY_TOL = 0.10


@pytest.fixture(scope="module")
def small_case() -> Case:
    """The small synthetic case that tests/data shares (seed 3 on the 4 mm ``SMALL`` grid)."""
    return make_case(3, SMALL)


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


def test_generate_cohort_healthy_fraction(tmp_path: Path) -> None:
    """A share of the cases is drawn without a tumour (all-zero seg on disk); the others are
    the cases the same cohort has without the option, and the healthy ones are spread evenly."""
    paths = generate_cohort(tmp_path / "h", 4, seed=1, config=SMALL, healthy_fraction=0.5)
    plain = generate_cohort(tmp_path / "p", 4, seed=1, config=SMALL)
    cases = [load_case(c) for c in discover_cases(tmp_path / "h")]
    healthy = [p.name for p, c in zip(paths, cases, strict=True) if not c.label.any()]
    assert healthy == ["Synth_00001", "Synth_00003"]
    for case, ref_path in zip(cases, plain, strict=True):
        ref = load_case(discover_cases(ref_path.parent)[int(ref_path.name[-1])])
        if case.label.any():
            assert np.array_equal(case.label, ref.label)
        else:
            assert ref.label.any()  # the same seed with a tumour: the option removed it
            assert (case.images[Modality.FLAIR] > 0).sum() > 1000  # still a brain
    assert [p.name for p in generate_cohort(tmp_path / "z", 3, seed=1, config=SMALL,
                                            healthy_fraction=0.0)] == [
        "Synth_00000", "Synth_00001", "Synth_00002"]
    with pytest.raises(ConfigError, match="healthy_fraction"):
        generate_cohort(tmp_path / "bad", 1, config=SMALL, healthy_fraction=1.5)


# ------------------------------------------------------------------ the ``brats-like`` preset
BRATS_LIKE_3MM = cohort_config("brats-like", shape=(64, 64, 44), spacing=(3.0, 3.0, 3.0))


def _effect(case: Case, mod: Modality, a: int, b: int) -> float:
    """|mean(a) − mean(b)| in units of the within-class sd of b (how visible a is against b)."""
    img = case.images[mod]
    return abs(_mean(case, mod, a) - _mean(case, mod, b)) / float(img[case.label == b].std())


def test_current_preset_is_the_original_generator() -> None:
    assert cohort_config("current") == SyntheticConfig()
    # label maps pinned to the generator as it was before presets existed (same rng draw order)
    h = hashlib.sha256()
    for seed in (0, 5):
        h.update(make_case(seed, SyntheticConfig(shape=(48, 48, 32), spacing=(4.0,) * 3)).label.tobytes())
    assert h.hexdigest() == "28a837d7366df79a0495a44ae9d4ebb2890609f476efd55b2014744599111d01"
    with pytest.raises(ConfigError, match="brats-like"):
        cohort_config("nope")


def test_brats_like_table_ncr_ed_obvious_in_t1_t2_weak_in_flair_t1ce() -> None:
    t = BRATS_LIKE_CONTRAST
    ncr, ed, et = 4, 3, 5  # table columns: CSF, GM, WM, ED, NCR, ET
    assert t[Modality.T2][ncr] / t[Modality.T2][ed] > 1.3
    assert t[Modality.T1][ncr] / t[Modality.T1][ed] < 0.5
    for mod in (Modality.FLAIR, Modality.T1CE):  # present (5-20 % lower) but weak
        assert 0.80 <= t[mod][ncr] / t[mod][ed] <= 0.95, mod
    assert t[Modality.T1CE][et] > 2.0 * t[Modality.T1CE][ed]


def test_brats_like_cases_follow_the_table() -> None:
    ncr, ed, et = 1, 2, 3
    flair_t1ce_effects, t1_t2_effects = [], []
    for seed in range(4):
        c = make_case(seed, BRATS_LIKE_3MM)
        assert _mean(c, Modality.T2, ncr) > 1.25 * _mean(c, Modality.T2, ed)
        assert _mean(c, Modality.T1, ncr) < 0.6 * _mean(c, Modality.T1, ed)
        for mod in (Modality.FLAIR, Modality.T1CE):
            ratio = _mean(c, mod, ncr) / _mean(c, mod, ed)
            assert 0.70 < ratio < 0.97, (seed, mod, ratio)  # NCR darker than ED, but only a little
            flair_t1ce_effects.append(_effect(c, mod, ncr, ed))
        t1_t2_effects += [_effect(c, Modality.T1, ncr, ed), _effect(c, Modality.T2, ncr, ed)]
        assert _mean(c, Modality.T1CE, et) > 1.8 * _mean(c, Modality.T1CE, ed)
    # the distinction a FLAIR+T1CE student must learn is several times fainter than in T1/T2
    assert np.median(t1_t2_effects) > 2.5 * np.median(flair_t1ce_effects)
    assert np.median(flair_t1ce_effects) > 0.5  # ... yet present


def test_brats_like_cases_have_several_tumours_and_vary() -> None:
    from scipy import ndimage

    cores, ratios = [], []
    for seed in range(6):
        c = make_case(seed, BRATS_LIKE_3MM)
        _, n = ndimage.label(np.isin(c.label, (1, 3)))
        cores.append(n)
        ratios.append(_mean(c, Modality.FLAIR, 1) / _mean(c, Modality.FLAIR, 2))
        assert set(np.unique(c.label).tolist()) == {0, 1, 2, 3}
    assert sum(n >= 2 for n in cores) >= 4, cores  # separate tumour cores in most cases
    assert np.std(ratios) > 0.01  # contrast varies from case to case (jitter), like scanners do
    plain = [make_case(s, cohort_config("current", shape=(64, 64, 44), spacing=(3.0,) * 3)) for s in (0, 1)]
    r = [_mean(c, Modality.FLAIR, 1) / _mean(c, Modality.FLAIR, 2) for c in plain]
    assert abs(r[0] - r[1]) < 0.05  # the original preset stays on its table


def test_synth_cli_writes_the_brats_like_preset(tmp_path: Path) -> None:
    from glioedge.cli import main

    out = tmp_path / "cohort"
    assert main(["synth", "--out", str(out), "--cases", "1", "--shape", "48,48,32", "--spacing", "4",
                 "--cohort", "brats-like"]) == 0
    case = load_case(discover_cases(out)[0])
    ref = make_case(
        int(np.random.SeedSequence([0, 0]).generate_state(1)[0]),
        cohort_config("brats-like", shape=(48, 48, 32), spacing=(4.0, 4.0, 4.0)),
    )
    assert np.array_equal(case.label, ref.label)
    assert np.allclose(case.images[Modality.T1CE], ref.images[Modality.T1CE], atol=0.5)
    assert main(["synth", "--out", str(tmp_path / "x"), "--cases", "1", "--cohort", "nope"]) == 2


def test_synth_cli_healthy_fraction(tmp_path: Path) -> None:
    from glioedge.cli import main

    out = tmp_path / "cohort"
    assert main(["synth", "--out", str(out), "--cases", "2", "--shape", "48,48,32", "--spacing", "4",
                 "--healthy-fraction", "0.5"]) == 0
    labels = [load_case(c).label for c in discover_cases(out)]
    assert labels[0].any() and not labels[1].any()
    assert main(["synth", "--out", str(tmp_path / "x"), "--cases", "1",
                 "--healthy-fraction", "2"]) == 2
