"""End to end on real anatomy (issue 22): the semi-synthetic MNI152 tumour case with a head
around it, written as a clinical DICOM study (T1CE 3-D sagittal tilted 15°, FLAIR and T2 2-D
axial, T1 coronal), through ``glioedge segment`` with the real HD-BET in the bundle.

The tumour network is the tiny random-weight student of the runtime tests (what it calls tumour is
meaningless; the SEG's structure is not); the brain extraction is the real one: its brain must
match the template's intracranial volume, keep the whole tumour, and be what the report, the
NIfTI, the Brain SEG and the QA picture show.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from glioedge.cli import main
from tests.synth.mni import mni_study_or_skip

#: ~1-2 min on 2 free cores (bundle export, HD-BET export, the study, one segment); the timeout
#: leaves room for a machine shared by several jobs, where it took 20 min
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]
torch = pytest.importorskip("torch", reason="building a bundle needs the export environment")
nib = pytest.importorskip("nibabel", reason="the independent NIfTI reader (glioedge[dev])")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory):
    return mni_study_or_skip(tmp_path_factory.mktemp("mni") / "study", seed=1, spacing_mm=2.0,
                             spacing_scale=1.5)


@pytest.fixture(scope="module")
def bundle(hdbet_onnx: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny student (preprocessing at 4 mm: fast) with the real HD-BET as its brain-mask model."""
    from glioedge.bundle import MODEL_FILE, Bundle, compute_bundle_id, sha256_file, write_manifest
    from glioedge.export.pipeline import ExportOptions, export_bundle
    from tests.runtime.conftest import make_tiny_checkpoint

    root = tmp_path_factory.mktemp("mni-bundle")
    ckpt = make_tiny_checkpoint(root / "ckpt", spacing=(4.0, 4.0, 4.0))
    dst = export_bundle(ckpt, root / "bundle", ExportOptions(fp16=False)).root
    path, entry = hdbet_onnx
    shutil.copyfile(path, dst / "brain_mask.onnx")
    m = Bundle.load(dst).manifest
    files = {**m.files, "brain_mask.onnx": sha256_file(dst / "brain_mask.onnx")}
    m = dataclasses.replace(m, brain_mask=dict(entry), files=files)
    m = dataclasses.replace(m, bundle_id=compute_bundle_id(files[MODEL_FILE], m.to_dict()))
    write_manifest(dst, m)
    return dst


@pytest.fixture(scope="module")
def result(study, bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mni-out")
    code = main(["segment", str(study.root), "--bundle", str(bundle), "--out", str(out),
                 "--backend", "onnxruntime", "--save-brain-mask", "both", "--qa-png"])
    assert code == 0
    return out


def test_segment_runs_on_the_clinical_study(study, result: Path) -> None:
    from glioedge.dicom_io import load_series, read_seg, scan_folder

    report = json.loads((result / "report.json").read_text())
    t1ce = load_series(next(s for st in scan_folder(study.series["t1ce"]) for s in st.series.values()))
    assert report["series_used"]["t1ce"] == t1ce.series_instance_uid
    assert report["grid"]["shape"] == list(t1ce.shape)
    labels = read_seg(result / "seg.dcm", reference=t1ce)  # the SEG's frames lie on the T1CE grid
    assert labels.shape == t1ce.shape
    for kind in ("seg", "qa_png", "brain_mask", "brain_seg"):
        assert kind in report["files"], kind


def test_brain_extraction_on_real_anatomy(study, result: Path) -> None:
    report = json.loads((result / "report.json").read_text())
    brain = report["brain"]
    assert brain["mode"] == "auto"
    # the finest series, the 3-D T1CE, runs first; the MNI152 head is large (its intracranial
    # volume is near the 2000 mL plausibility bound), so the other series may be added: the
    # report names every series the mask came from
    assert brain["from_modalities"][0] == "t1ce"
    assert brain["from_series"] == {m: report["series_used"][m] for m in brain["from_modalities"]}
    mask = np.asarray(nib.load(result / "brain_mask.nii.gz").dataobj) > 0
    truth = np.asarray(study.brain.array, bool)
    tumour = np.asarray(study.labels.array) > 0
    dice = 2 * float((mask & truth).sum()) / float(mask.sum() + truth.sum())
    recall = float((mask & tumour).sum()) / float(tumour.sum())
    spacing = np.asarray(study.brain.spacing)
    assert mask.sum() * np.prod(spacing) / 1000 == pytest.approx(brain["volume_ml"], abs=0.1)
    print(f"MNI case: brain Dice {dice:.4f} vs the template's intracranial mask, tumour recall "
          f"{recall:.4f}, brain {brain['volume_ml']} mL")
    assert dice >= 0.9, dice
    assert recall >= 0.99, recall
