"""The semi-synthetic case on real anatomy (MNI152 2009 tissue maps from nilearn's wheel): the
``brats-like`` contrasts hold on the written DICOM, the series lie on the clinical grids asked for,
and the truth comes back on the T1CE grid. The end-to-end run (``glioedge segment``, HD-BET) is
tests/skullstrip/test_mni_study.py."""

from __future__ import annotations

import numpy as np
import pytest

from glioedge.data.modalities import Modality
from glioedge.dicom_io import load_series, resample_to, scan_folder
from glioedge.synth import TemplateMissingError, mni152_paths
from glioedge.synth.cohort import BRATS_LIKE_CONTRAST
from glioedge.synth.geometry import CLINICAL_GEOMETRIES, clinical_grid
from glioedge.synth.mni_case import write_mni_study

try:
    mni152_paths()
except TemplateMissingError as exc:  # CI installs nilearn (the dev extra)
    pytest.skip(f"MNI152 tissue maps not installed: {exc}", allow_module_level=True)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory):
    return write_mni_study(tmp_path_factory.mktemp("mni") / "study", seed=3, spacing_mm=2.0,
                           spacing_scale=1.5)


@pytest.fixture(scope="module")
def series(study) -> dict:
    """Each written series read back by glioedge's intake, once."""
    return {m: load_series(next(s for st in scan_folder(folder) for s in st.series.values()))
            for m, folder in study.series.items()}


def test_series_lie_on_the_clinical_grids(study, series) -> None:
    t1ce = series["t1ce"]
    # 3-D sagittal, slab tilted 15° about A–P: the slice normal is 15° off L–R, in the L–S plane
    normal = t1ce.direction[:, 2]
    assert np.degrees(np.arccos(abs(normal[0]))) == pytest.approx(15.0, abs=0.01)
    assert abs(normal[1]) < 1e-6
    assert np.allclose(t1ce.spacing, [1.5, 1.5, 1.5], atol=1e-4)
    flair = series["flair"]
    assert np.allclose(flair.direction, np.eye(3), atol=1e-6)
    assert flair.spacing[2] == pytest.approx(7.5)
    t1 = series["t1"]
    assert abs(t1.direction[1, 2]) == pytest.approx(1.0)  # coronal: slices along A–P
    assert study.labels.same_grid(t1ce) and study.brain.same_grid(t1ce)
    assert set(np.unique(study.labels.array)) == {0, 1, 2, 3}
    brain_ml = float(np.asarray(study.brain.array).sum()) * float(np.prod(t1ce.spacing)) / 1000
    assert 1500 < brain_ml < 2100  # the MNI152 template's intracranial volume (~1.9 L)


def test_brats_like_contrasts_hold_on_the_written_images(study, series) -> None:
    from scipy import ndimage

    t1ce = series["t1ce"]
    labels = np.asarray(study.labels.array)
    healthy_mask = np.asarray(study.brain.array) & ~ndimage.binary_dilation(labels > 0, iterations=3)
    cores = {lab: ndimage.binary_erosion(labels == lab) for lab in (1, 2, 3)}
    name = {1: 4, 2: 3, 3: 5}  # label → column of the table (CSF, GM, WM, ED, NCR, ET)
    checked = 0
    for mod in ("t1", "t2", "flair", "t1ce"):
        img = np.asarray(resample_to(series[mod], t1ce, "linear").array, np.float64)
        table = BRATS_LIKE_CONTRAST[Modality(mod)]
        med = {lab: float(np.median(img[m])) for lab, m in cores.items()}
        for a in (1, 2, 3):
            for b in (1, 2, 3):
                if table[name[a]] - table[name[b]] >= 0.12:  # a clearly brighter than b by the table
                    assert med[a] > med[b], (mod, a, b, med)
                    checked += 1
        healthy = float(np.median(img[healthy_mask]))
        if mod == "flair":
            assert med[2] > 1.3 * healthy  # edema is FLAIR-bright
        if mod == "t1ce":
            assert med[3] > 1.5 * healthy  # the rim enhances
    assert checked >= 6


def test_clinical_grid_covers_the_source(series) -> None:
    t1ce = series["t1ce"]
    grid = clinical_grid(CLINICAL_GEOMETRIES["ax5"], t1ce)
    for corner in ((0, 0, 0), tuple(n - 1 for n in t1ce.shape)):
        p = t1ce.affine @ np.array([*corner, 1.0])
        ijk = np.linalg.solve(grid.affine, p)[:3]
        assert np.all(ijk > -0.5) and np.all(ijk < np.asarray(grid.shape) - 0.5)
