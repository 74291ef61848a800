from __future__ import annotations

import json

import numpy as np
import pytest

from glioedge.data.brats import Case
from glioedge.data.geometry import make_affine
from glioedge.data.modalities import TEACHER_MODALITIES
from glioedge.data.preprocess import (
    PreprocessParams,
    PreprocessRecord,
    preprocess,
    restore_to_original,
)
from glioedge.errors import ConfigError, InputError

MODS = tuple(m.value for m in TEACHER_MODALITIES)


def test_params_round_trip_and_unknown_keys() -> None:
    p = PreprocessParams(MODS, target_spacing=(1.0, 1.0, 1.5), crop_margin_vox=2)
    d = json.loads(json.dumps(p.to_dict()))
    assert PreprocessParams.from_dict(d) == p
    with pytest.raises(ConfigError, match=r"\['spacing'\]"):
        PreprocessParams.from_dict({**d, "spacing": [1, 1, 1]})
    with pytest.raises(ConfigError, match="image_interpolation"):
        PreprocessParams(MODS, image_interpolation="cubic")


def test_reproducible_from_serialised_params(small_case: Case) -> None:
    p = PreprocessParams(MODS, target_spacing=(2.0, 2.0, 3.0), image_interpolation="bspline3")
    q = PreprocessParams.from_dict(json.loads(json.dumps(p.to_dict())))
    a = preprocess(small_case.images, small_case.affine, p, label=small_case.label)
    b = preprocess(small_case.images, small_case.affine, q, label=small_case.label)
    assert a.data.tobytes() == b.data.tobytes()
    assert np.array_equal(a.label, b.label)
    assert a.record == b.record
    assert PreprocessRecord.from_dict(json.loads(json.dumps(a.record.to_dict()))) == a.record


def test_zscore_inside_mask_zero_outside(small_case: Case) -> None:
    p = PreprocessParams(MODS, target_spacing=small_case.spacing)
    out = preprocess(small_case.images, small_case.affine, p, label=small_case.label)
    assert out.data.dtype == np.float32
    assert out.data.shape == (4, *out.label.shape)
    for c in range(4):
        inside = out.data[c][out.mask].astype(np.float64)
        assert inside.mean() == pytest.approx(0.0, abs=1e-4)
        assert inside.std() == pytest.approx(1.0, abs=1e-4)
        assert np.all(out.data[c][~out.mask] == 0.0)
    # cropped to the brain: the mask touches every face of the box
    for axis in range(3):
        assert out.mask.take(0, axis=axis).any()
        assert out.mask.take(-1, axis=axis).any()


def _blob_case(spacing: float, centre_mm: np.ndarray) -> tuple[dict, np.ndarray]:
    shape = (30, 30, 20)
    origin = np.array([-29.0, -29.0, -19.0]) * spacing / 2
    affine = make_affine((spacing,) * 3, origin)
    brain = np.zeros(shape, dtype=np.float32)
    brain[3:-3, 3:-3, 2:-2] = 1.0
    idx = np.indices(shape).reshape(3, -1).T
    mm = idx * spacing + origin
    dist = np.linalg.norm(mm - centre_mm, axis=1).reshape(shape)
    img = brain * (1.0 + 5.0 * np.exp(-(dist**2) / (2 * 4.0**2))).astype(np.float32)
    return {"t1": img}, affine


def _peak_mm(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    w = np.clip(data - np.percentile(data, 99.0), 0, None)
    idx = np.indices(data.shape).reshape(3, -1)
    centroid = (idx * w.ravel()).sum(axis=1) / w.sum()
    return (np.asarray(affine) @ np.append(centroid, 1.0))[:3]


def test_resampling_is_physical() -> None:
    centre = np.array([7.0, -5.0, 4.0])
    images, affine = _blob_case(2.0, centre)
    p = PreprocessParams(("t1",), target_spacing=(1.0, 1.0, 1.0))
    out = preprocess(images, affine, p)
    assert out.record.resampled_shape == tuple(2 * (hi - lo) for lo, hi in out.record.crop_bbox)
    found = _peak_mm(out.data[0], np.asarray(out.record.resampled_affine))
    assert np.allclose(found, centre, atol=0.5), found


def test_restore_labels_exact_without_resampling(small_case: Case) -> None:
    p = PreprocessParams(MODS, target_spacing=small_case.spacing, crop_margin_vox=1)
    out = preprocess(small_case.images, small_case.affine, p, label=small_case.label)
    assert out.label.shape != small_case.label.shape  # it was cropped
    back = restore_to_original(out.label, out.record, is_label=True)
    assert np.array_equal(back, small_case.label)


def test_restore_probabilities_after_resampling(small_case: Case) -> None:
    p = PreprocessParams(MODS, target_spacing=(2.0, 2.0, 2.0))
    out = preprocess(small_case.images, small_case.affine, p, label=small_case.label)
    onehot = np.eye(4, dtype=np.float32)[out.label].transpose(3, 0, 1, 2)
    probs = restore_to_original(onehot, out.record, is_label=False)
    assert probs.shape == (4, *small_case.label.shape)
    assert np.allclose(probs.sum(axis=0), 1.0, atol=1e-5)
    labels = restore_to_original(out.label, out.record, is_label=True)
    agree = (probs.argmax(axis=0) == small_case.label).mean()
    assert agree > 0.99
    assert (labels == small_case.label).mean() > 0.99
    with pytest.raises(InputError, match="preprocessed shape"):
        restore_to_original(onehot[:, :-1], out.record, is_label=False)


def test_missing_modality_and_empty_mask(small_case: Case) -> None:
    with pytest.raises(InputError, match=r"missing modalities \['t2'\]"):
        preprocess({"t1": small_case.images["t1"]}, small_case.affine,
                   PreprocessParams(("t1", "t2")))
    zeros = {"t1": np.zeros((4, 4, 4), np.float32)}
    with pytest.raises(InputError, match="empty"):
        preprocess(zeros, np.eye(4), PreprocessParams(("t1",)))
