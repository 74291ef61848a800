"""Users can see the brain mask (issue 22): ``report.json`` carries its volume and the series it
came from, ``--save-brain-mask`` writes it as NIfTI and as a "Brain" SEG of its own, and the QA
picture outlines it. Run through the CLI on the synthetic study (skull-stripped fallback: the
tiny bundle carries no brain-mask network; the HD-BET path is tests/skullstrip/test_mni_study.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from glioedge.cli import main
from glioedge.dicom_io import load_study
from glioedge.dicom_io.validator import dciodvfy_verdict

hd = pytest.importorskip("highdicom")
nib = pytest.importorskip("nibabel", reason="the independent NIfTI reader (glioedge[dev])")


@pytest.fixture(scope="module")
def outputs(trained_bundle: Path, synthetic_study: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("brain-out")
    code = main(["segment", str(synthetic_study), "--bundle", str(trained_bundle), "--out", str(out / "both"),
                 "--backend", "onnxruntime", "--save-brain-mask", "both", "--qa-png"])
    assert code == 0
    code = main(["segment", str(synthetic_study), "--bundle", str(trained_bundle), "--out",
                 str(out / "plain"), "--backend", "onnxruntime"])
    assert code == 0
    return out


def test_report_gives_the_brain_volume_and_its_series(outputs: Path, synthetic_study: Path) -> None:
    report = json.loads((outputs / "both" / "report.json").read_text())
    study = load_study(synthetic_study)
    brain = report["brain"]
    assert brain["mode"] == "skull-stripped"  # the tiny bundle has no brain-mask network
    # skull-stripped: the union of both channels' nonzero voxels, so both series
    assert brain["from_series"] == {m: s.series_instance_uid for m, s in study.series.items()}
    assert brain["grid_series"] == study.series["t1ce"].series_instance_uid
    ref = study.volumes["t1ce"]
    expected = np.zeros(ref.shape, bool)
    for vol in study.volumes.values():
        expected |= np.asarray(vol.array) != 0
    assert brain["volume_ml"] == pytest.approx(expected.sum() * np.prod(ref.spacing) / 1000, abs=0.06)
    assert report["files"]["brain_mask"] == "brain_mask.nii.gz"
    assert report["files"]["brain_seg"] == "brain_seg.dcm"
    # without the option: the report says the same, and no mask files are written
    plain = json.loads((outputs / "plain" / "report.json").read_text())
    assert plain["brain"] == brain
    assert not (outputs / "plain" / "brain_mask.nii.gz").exists()
    assert not (outputs / "plain" / "brain_seg.dcm").exists()


def test_nifti_mask_is_the_brain_on_the_reference_grid(outputs: Path, synthetic_study: Path) -> None:
    image = nib.load(outputs / "both" / "brain_mask.nii.gz")
    ref = load_study(synthetic_study).volumes["t1ce"]
    assert np.allclose(image.affine, ref.ras_affine(), atol=1e-4)
    mask = np.asarray(image.dataobj) > 0
    report = json.loads((outputs / "both" / "report.json").read_text())
    assert mask.sum() * np.prod(ref.spacing) / 1000 == pytest.approx(report["brain"]["volume_ml"], abs=0.06)


def test_brain_seg_is_one_brain_segment_on_the_reference_series(outputs: Path,
                                                                 synthetic_study: Path) -> None:
    seg = hd.seg.segread(outputs / "both" / "brain_seg.dcm")
    tumour = hd.seg.segread(outputs / "both" / "seg.dcm")
    study = load_study(synthetic_study)
    assert seg.SeriesInstanceUID != tumour.SeriesInstanceUID
    assert seg.SeriesNumber == tumour.SeriesNumber + 1
    (segment,) = seg.SegmentSequence
    assert segment.SegmentLabel == "Brain"
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "12738006"
    assert segment.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "91723000"
    refs = [str(s.SeriesInstanceUID) for s in seg.ReferencedSeriesSequence]
    assert refs == [study.series["t1ce"].series_instance_uid]
    mask = np.asarray(nib.load(outputs / "both" / "brain_mask.nii.gz").dataobj) > 0
    assert int(np.asarray(seg.pixel_array).sum()) == int(mask.sum())
    verdict = dciodvfy_verdict(outputs / "both" / "brain_seg.dcm")
    if "not installed" not in verdict:
        assert verdict == "no errors", verdict


def test_qa_picture_outlines_the_brain(outputs: Path) -> None:
    from PIL import Image

    from glioedge.runtime.qa_png import BRAIN_RGB

    image = Image.open(outputs / "both" / "qa.png").convert("RGB")
    assert {c: n for n, c in image.getcolors(maxcolors=1 << 22)}.get(BRAIN_RGB, 0) > 500


def test_bad_save_brain_mask_value_is_refused() -> None:
    from glioedge.errors import ConfigError
    from glioedge.runtime import SegmenterConfig

    with pytest.raises(ConfigError, match="save_brain_mask"):
        SegmenterConfig(save_brain_mask="png")
