"""The ONNX brain-mask stage with a stand-in network: physical-space geometry, the union over
series, what is recorded, and the specific errors of a failing extractor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glioedge.dicom_io import Volume
from glioedge.errors import BackendError, InputError, ModelError
from glioedge.runtime.skullstrip import BrainMaskModel, SkullStripConfig, extract_brain, network_grid
from tests.skullstrip.conftest import FAKE_SPEC, ellipsoid_volume, write_fake_model


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


def _truth(shape, spacing, orientation):
    img, aff = ellipsoid_volume(shape, spacing, orientation)
    return Volume(img, aff), img > 500


@pytest.mark.parametrize("orientation", ["axial", "sagittal", "coronal", "oblique"])
def test_mask_lands_on_the_object_in_any_orientation(fake_model_path: Path, orientation: str):
    vol, truth = _truth((48, 56, 40), (2.0, 2.0, 2.5), orientation)
    model = BrainMaskModel(fake_model_path, FAKE_SPEC)
    prob = model.probability(vol)
    assert prob.shape == vol.shape
    assert _dice(prob > 0.5, truth) > 0.9


def test_network_grid_is_the_spec_orientation_and_covers_the_field_of_view():
    vol, _ = _truth((48, 56, 40), (2.0, 2.0, 2.5), "oblique")
    grid = network_grid(vol, FAKE_SPEC).image
    assert np.allclose(np.reshape(grid.GetDirection(), (3, 3)), [[0, 0, 1], [0, -1, 0], [1, 0, 0]])
    assert grid.GetSpacing() == (3.0, 3.0, 3.0)
    n = np.array(vol.shape) - 1
    for corner in ([0, 0, 0], n, [n[0], 0, n[2]]):
        world = vol.affine @ np.array([*corner, 1.0])
        idx = np.array(grid.TransformPhysicalPointToContinuousIndex([float(x) for x in world[:3]]))
        assert (idx > -1e-3).all() and (idx < np.array(grid.GetSize()) - 1 + 1e-3).all()


def test_union_over_series_on_their_own_grids(fake_model_path: Path):
    axial, truth = _truth((48, 56, 40), (2.0, 2.0, 2.5), "axial")
    sag, _ = _truth((40, 48, 56), (2.5, 2.0, 2.0), "sagittal")
    model = BrainMaskModel(fake_model_path, FAKE_SPEC)
    out = extract_brain({"flair": sag, "t1ce": axial}, model, "t1ce", SkullStripConfig(margin_mm=0.0))
    assert out.mask.shape == axial.shape
    assert _dice(out.brain, truth) > 0.9
    assert set(out.per_series_ml) == {"flair", "t1ce"}
    true_ml = 4 / 3 * np.pi * 40 * 50 * 35 / 1000
    assert out.brain_ml == pytest.approx(true_ml, rel=0.1)
    assert out.warnings and "below 800" in out.warnings[0]  # a 290 mL "brain" is implausible
    rep = out.report()
    assert rep["model"] == "fake" and rep["margin_mm"] == 0.0 and rep["series"] == ["flair", "t1ce"]
    wide = extract_brain({"t1ce": axial}, model, "t1ce", SkullStripConfig(margin_mm=6.0))
    assert wide.mask_ml > wide.brain_ml and wide.mask[out.brain].all()


def test_mirroring_is_a_choice_and_recorded(fake_model_path: Path):
    vol, _ = _truth((32, 32, 32), (3.0, 3.0, 3.0), "axial")
    model = BrainMaskModel(fake_model_path, FAKE_SPEC)
    out = extract_brain({"t1ce": vol}, model, vol, SkullStripConfig(mirror=True))
    assert out.params["mirror_axes"] == [0, 1, 2] and model.last_timings["passes"] == 8


def test_failing_extractor_raises_specific_errors(tmp_path: Path, fake_model_path: Path):
    vol, _ = _truth((32, 32, 32), (3.0, 3.0, 3.0), "axial")
    broken = BrainMaskModel(write_fake_model(tmp_path / "bad.onnx", bad_shape=True), FAKE_SPEC)
    with pytest.raises(BackendError, match=r"series 't1ce'.*returned"):
        extract_brain({"t1ce": vol}, broken, "t1ce")
    with pytest.raises(ModelError, match="missing"):
        BrainMaskModel(tmp_path / "absent.onnx", FAKE_SPEC)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load"):
        BrainMaskModel(tmp_path / "junk.onnx", FAKE_SPEC)
    model = BrainMaskModel(fake_model_path, FAKE_SPEC)
    with pytest.raises(InputError, match="constant"):
        extract_brain({"t1ce": vol.with_array(np.zeros(vol.shape, np.float32))}, model, "t1ce")
    dark = vol.with_array(np.where(np.arange(32)[:, None, None] < 1, 1000.0, 0.0)
                          * np.ones(vol.shape, np.float32))
    assert BrainMaskModel(fake_model_path, FAKE_SPEC).probability(dark).max() > 0.5  # sanity
    with pytest.raises(InputError, match="not among"):
        extract_brain({"t1ce": vol}, model, "flair")
