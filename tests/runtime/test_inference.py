"""The inference path: shared preprocessing → sliding window → probabilities back on the grid."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from glioedge.bundle import Bundle
from glioedge.data.preprocess import PreprocessParams
from glioedge.errors import InputError, ModelError
from glioedge.runtime.backends import select_backend
from glioedge.runtime.inference import preprocess_params, run_inference, softmax
from glioedge.runtime.quality.signals import MIRROR_MEASURE

from .conftest import study_volumes


def test_softmax_is_stable_and_normalised() -> None:
    x = np.array([[1000.0, -1000.0], [0.0, 0.0], [1001.0, 5.0]], np.float32)
    p = softmax(x.copy())
    assert np.allclose(p.sum(0), 1) and np.isfinite(p).all()
    assert p[2, 0] == pytest.approx(1 / (1 + np.exp(-1)), rel=1e-5)


def _case() -> tuple[dict[str, np.ndarray], np.ndarray]:
    vols = study_volumes()
    ref = vols["t1ce"]
    from glioedge.dicom_io import resample_to

    return {"flair": resample_to(vols["flair"], ref).array, "t1ce": ref.array}, ref.affine


def test_labels_on_input_grid_with_resampling(trained_bundle: Path) -> None:
    """Network at 3 mm, input at 2 mm: preprocess resamples, probabilities come back linearly."""
    bundle = Bundle.load(trained_bundle)
    pre = PreprocessParams.from_dict(bundle.manifest.preprocess)
    manifest = dataclasses.replace(
        bundle.manifest, preprocess=dataclasses.replace(pre, target_spacing=(3.0, 3.0, 3.0)).to_dict())
    images, affine = _case()
    backend = select_backend(bundle, "onnxruntime", "cpu")
    out = run_inference(images, affine, manifest, backend)
    assert out.labels.shape == images["t1ce"].shape and out.labels.dtype == np.uint8
    assert out.record.resampled_shape != out.record.cropped_shape
    outside = np.ones(out.labels.shape, bool)
    outside[tuple(slice(lo, hi) for lo, hi in out.record.crop_bbox)] = False
    assert not out.labels[outside].any()  # outside the brain box: background
    assert set(out.timings) == {"preprocess", "inference", "resample", "quality_signals"}
    assert set(out.profiles) == set(images) and out.entropy["tumour_voxels"] == int((out.labels > 0).sum())


@pytest.mark.slow
def test_mirroring_runs_and_changes_little(trained_bundle: Path) -> None:
    bundle = Bundle.load(trained_bundle)
    images, affine = _case()
    backend = select_backend(bundle, "onnxruntime", "cpu")
    plain = run_inference(images, affine, bundle.manifest, backend)
    mirrored = run_inference(images, affine, bundle.manifest, backend, mirror=True, batch_size=4)
    assert mirrored.labels.shape == plain.labels.shape
    assert mirrored.windows == plain.windows
    # the window measured the mirrored predictions' disagreement inside the network's tumour
    assert plain.disagreement is None
    d = mirrored.disagreement
    assert d is not None and d["available"] is True
    # the trained network finds the case's tumour, so the score was computed over it
    assert d["tumour_voxels"] > 0 and d["measure"] == MIRROR_MEASURE
    assert d["mean"] <= 1.0 and d["p90"] <= 1.0  # a share of the flips, blended: never above 1


def test_mirrored_segmentation_reports_the_disagreement(trained_bundle: Path) -> None:
    """Through the Segmenter: the verdict's scores carry the measured disagreement (issue 19)."""
    from glioedge.runtime import Segmenter, SegmenterConfig

    cfg = SegmenterConfig(mirror=True, batch_size=4, brain_mask="skull-stripped", step_size=1.0)
    with Segmenter.from_bundle(trained_bundle, "onnxruntime", "cpu", cfg) as seg:
        res = seg.segment_volumes(study_volumes())
    md = res.quality["scores"]["uncertainty"]["mirror_disagreement"]
    assert md["available"] is True and "tumour_voxels" in md, md


def test_given_brain_mask_limits_output(trained_bundle: Path) -> None:
    bundle = Bundle.load(trained_bundle)
    images, affine = _case()
    mask = np.zeros(images["t1ce"].shape, bool)
    mask[30:60, 30:60, 20:40] = True
    out = run_inference(images, affine, bundle.manifest, select_backend(bundle, "onnxruntime", "cpu"),
                        brain_mask=mask)
    assert out.record.crop_bbox == ((30, 60), (30, 60), (20, 40))
    assert not out.labels[~mask].any()  # outside the crop: background


def test_missing_modality_is_input_error(trained_bundle: Path) -> None:
    bundle = Bundle.load(trained_bundle)
    images, affine = _case()
    with pytest.raises(InputError, match="missing modalities"):
        run_inference({"t1ce": images["t1ce"]}, affine, bundle.manifest,
                      select_backend(bundle, "onnxruntime", "cpu"))


def test_manifest_modalities_must_match_preprocess(trained_bundle: Path) -> None:
    m = Bundle.load(trained_bundle).manifest
    with pytest.raises(ModelError, match="differ"):
        preprocess_params(dataclasses.replace(m, modalities=("t1ce", "flair")))
