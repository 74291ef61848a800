"""``glioedge segment --register``: a study whose FLAIR lies in another frame of reference is
refused by default, and with ``--register`` aligned rigidly, recorded in the SEG and the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from glioedge.cli import main
from glioedge.dicom_io import deterministic_uid
from glioedge.runtime import SegmenterConfig

SHIFT_MM = 4.0


@pytest.fixture(scope="module")
def two_sessions(synthetic_study: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic study with its FLAIR moved into another frame of reference, 4 mm along x."""
    out = tmp_path_factory.mktemp("two-sessions") / "study"
    other_for = deterministic_uid("another session")
    for src in sorted(synthetic_study.rglob("*.dcm")):
        ds = pydicom.dcmread(src)
        if "flair" in src.parent.name:
            ds.FrameOfReferenceUID = other_for
            ds.ImagePositionPatient = [float(v) + (SHIFT_MM if i == 0 else 0.0)
                                       for i, v in enumerate(ds.ImagePositionPatient)]
        dst = out / src.relative_to(synthetic_study)
        dst.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(dst, enforce_file_format=True)
    return out


@pytest.mark.slow
def test_segment_register(two_sessions: Path, trained_bundle: Path, tmp_path: Path,
                          caplog: pytest.LogCaptureFixture) -> None:
    base = ["segment", str(two_sessions), "--bundle", str(trained_bundle), "--brain-mask", "skull-stripped"]
    assert main([*base, "--out", str(tmp_path / "refused")]) == 2
    assert "frames of reference differ" in caplog.text
    assert not (tmp_path / "refused" / "seg.dcm").exists()

    assert main([*base, "--register", "--out", str(tmp_path / "ok")]) == 0
    report = json.loads((tmp_path / "ok" / "report.json").read_text())
    assert set(report["registration"]) == {"flair"}
    assert report["registration"]["flair"]["type"] == "Euler3DTransform"
    translation = np.asarray(report["registration"]["flair"]["parameters"][3:])
    assert np.linalg.norm(translation) < 4 * SHIFT_MM  # a rigid alignment, not a wild one
    assert report["config"]["register"] is True
    seg = pydicom.dcmread(tmp_path / "ok" / "seg.dcm")
    params = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmParameters
    assert "registered=flair" in params


def test_register_changes_the_seg_uid_only_when_on() -> None:
    off, on = SegmenterConfig(), SegmenterConfig(register=True)
    assert "register" not in off.uid_dict()  # SEG UIDs of existing configurations unchanged
    assert on.uid_dict()["register"] is True
