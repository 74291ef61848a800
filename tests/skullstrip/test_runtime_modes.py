"""The brain-mask modes in the Segmenter: ``auto`` (the bundle's network), the fallback without
one, ``skull-stripped`` on a raw head, the record in the report and in the SEG, and a failing
extractor's specific error. The network here is the fast stand-in of conftest; the real HD-BET
is covered by test_hdbet.py."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from glioedge.bundle import MODEL_FILE, Bundle, compute_bundle_id, sha256_file, write_manifest
from glioedge.data.modalities import Modality
from glioedge.dicom_io import Volume
from glioedge.errors import BackendError
from glioedge.runtime import Segmenter, SegmenterConfig
from glioedge.synth import write_synthetic_series
from glioedge.synth.cohort import SyntheticConfig, make_case
from glioedge.synth.head_phantom import add_head
from tests.skullstrip.conftest import FAKE_SPEC, write_fake_model

pytest.importorskip("torch", reason="building a bundle needs the export environment")


@pytest.fixture(scope="module")
def plain_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from glioedge.data.preprocess import PreprocessParams
    from glioedge.export.pipeline import ExportOptions, export_bundle
    from glioedge.train.checkpoint import CheckpointMeta, save_checkpoint
    from glioedge.train.networks import build_unet
    from glioedge.train.plan import TINY

    root = tmp_path_factory.mktemp("bundles")
    torch.manual_seed(0)
    student = build_unet(TINY, in_channels=2, num_classes=4, deep_supervision=True)
    pre = PreprocessParams(modalities=("flair", "t1ce"), target_spacing=(5.0, 5.0, 5.0)).to_dict()
    meta = CheckpointMeta(plan=TINY, preprocess=pre, teacher_modalities=["t1", "t2", "flair", "t1ce"],
                          student_modalities=["flair", "t1ce"], num_classes=4, epoch=0, config={},
                          metrics={}, provenance={}, student_only=True)
    ckpt = save_checkpoint(root / "ckpt", meta, {"student": student})
    return export_bundle(ckpt, root / "plain", ExportOptions(fp16=False)).root


def _with_brain_mask(src: Path, dst: Path, *, bad: bool = False) -> Path:
    shutil.copytree(src, dst)
    model = write_fake_model(dst / "brain_mask.onnx", bad_shape=bad)
    digest = sha256_file(model)
    m = Bundle.load(dst).manifest
    entry = dataclasses.replace(FAKE_SPEC, sha256=digest).to_dict()
    files = {**m.files, "brain_mask.onnx": digest}
    m = dataclasses.replace(m, brain_mask=entry, files=files)
    # the extractor is part of the bundle's identity
    m = dataclasses.replace(m, bundle_id=compute_bundle_id(files[MODEL_FILE], m.to_dict()))
    write_manifest(dst, m)
    return dst


@pytest.fixture(scope="module")
def masked_bundle(plain_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _with_brain_mask(plain_bundle, tmp_path_factory.mktemp("bm") / "with_mask")


@pytest.fixture(scope="module")
def heads() -> dict[str, Volume]:
    case = make_case(2, SyntheticConfig(shape=(40, 48, 36), spacing=(4.0, 4.0, 4.0)))
    out = {}
    for mod in ("flair", "t1ce"):
        head = add_head(case.images[Modality(mod)], case.affine, mod, seed=4, neck=False)
        out[mod] = Volume(head.array, head.affine)
    return out


def _segment(bundle: Path, heads: dict[str, Volume], **cfg) -> object:
    with Segmenter.from_bundle(bundle, "onnxruntime", config=SegmenterConfig(**cfg)) as seg:
        return seg.segment_volumes(heads)


def test_auto_runs_the_bundle_network_and_records_it(masked_bundle: Path, heads):
    res = _segment(masked_bundle, heads, brain_mask_margin_mm=4.0)
    rep = res.report()
    assert res.brain_mask_mode == "auto" and rep["brain_mask_mode"] == "auto"
    ext = rep["config"]["brain_extraction"]
    assert ext["model"] == "fake" and ext["margin_mm"] == 4.0 and ext["series"] == ["flair", "t1ce"]
    assert ext["brain_ml"] > 0 and "regrown_components" in ext
    assert rep["timings_s"]["brain_mask"] > 0


def test_auto_without_a_model_falls_back_and_says_so(plain_bundle: Path, heads):
    res = _segment(plain_bundle, heads)
    ext = res.report()["config"]["brain_extraction"]
    assert res.brain_mask_mode == "skull-stripped" and ext["fallback"].startswith("bundle has no")
    assert ext["nonzero_fraction"] > 0.99 and "does not look skull-stripped" in ext["warnings"][0]


def test_skull_stripped_mode_is_recorded(masked_bundle: Path, heads):
    res = _segment(masked_bundle, heads, brain_mask="skull-stripped")
    assert res.brain_mask_mode == "skull-stripped"
    assert res.report()["config"]["brain_mask"] == "skull-stripped"


def test_seg_algorithm_parameters_carry_the_mode(masked_bundle: Path, heads, tmp_path: Path):
    study = tmp_path / "study"
    for number, (mod, vol) in enumerate(heads.items(), start=1):
        image = np.clip(vol.array, 0, 4000).astype(np.uint16)
        write_synthetic_series(study / mod, image, vol.affine, modality=mod, storage="mr",
                               series_number=number)
    with Segmenter.from_bundle(masked_bundle, "onnxruntime") as seg:
        res = seg.segment_study(study)
    params = {str(a.AlgorithmParameters) for s in res.seg.SegmentSequence
              for a in s.SegmentationAlgorithmIdentificationSequence}
    assert params and all("brain_mask=auto" in p and "model_bundle=" in p for p in params)


def test_failing_extractor_is_a_backend_error(plain_bundle: Path, heads, tmp_path: Path):
    broken = _with_brain_mask(plain_bundle, tmp_path / "broken", bad=True)
    with pytest.raises(BackendError, match="brain extraction on series"):
        _segment(broken, heads)


def test_segmenter_reports_its_stages_and_windows(masked_bundle: Path, heads, caplog):
    import logging

    from glioedge.progress import Progress, use_progress

    caplog.set_level(logging.INFO, logger="glioedge.progress")
    with use_progress(Progress()) as progress:
        res = _segment(masked_bundle, heads)
    assert list(progress.times) == ["brain extraction", "segmentation", "post-processing"]
    windows = [r.getMessage() for r in caplog.records if "windows" in r.getMessage()]
    assert windows[-1] == f"segmentation: windows {res.windows} of {res.windows}"
    # the stand-in keeps the scalp (> 2000 mL): implausible, so the other series is added
    assert res.report()["config"]["brain_extraction"]["series_run"] == ["t1ce", "flair"]
