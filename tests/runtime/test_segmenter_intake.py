"""Clinical intake through the Segmenter: a CD export with a DICOMDIR, a resent instance and a
repeated FLAIR is segmented, and report.json says what was used and left out, without PHI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.fileset import FileSet

from glioedge.dicom_io.uids import deterministic_uid
from glioedge.runtime import Segmenter, SegmenterConfig
from glioedge.synth import write_synthetic_series
from tests.helpers import dciodvfy_errors

from .conftest import study_volumes


@pytest.mark.slow
def test_dicomdir_export_with_resend_and_rescan_is_segmented(trained_bundle: Path, synthetic_study: Path,
                                                             tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    shutil.copytree(synthetic_study, staging)
    # The FLAIR was run again after motion (acquired 20 min later): that one must be used.
    rescan = write_synthetic_series(
        staging / "flair_rescan", study_volumes()["flair"], modality="flair", series_number=4,
        series_instance_uid=deterministic_uid("flair re-scan"),
        overrides={"AcquisitionTime": "103500"})
    fs = FileSet()
    for path in sorted(staging.rglob("*.dcm")):
        fs.add(pydicom.dcmread(path))
    export = tmp_path / "DOE^JOHN_12345"  # a viewer export named after the patient
    fs.write(export)
    rescan_uid = pydicom.dcmread(rescan[0]).SeriesInstanceUID
    resent = next(p for p in sorted(export.rglob("IM*"))
                  if pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID == rescan_uid)
    shutil.copy(resent, export / "resent")  # an instance of the FLAIR used, a second time
    with Segmenter.from_bundle(trained_bundle, "onnxruntime", "cpu",
                               SegmenterConfig(postprocess=False)) as seg:
        result = seg.segment_study(export)
    assert result.series_used["flair"] == rescan_uid
    files = result.write(tmp_path / "out")
    assert dciodvfy_errors(files["seg"]) == []
    text = files["report"].read_text()
    intake = json.loads(text)["intake"]
    assert intake["repeats"]["flair"]["chosen"]["series_instance_uid"] == rescan_uid
    assert intake["repeats"]["flair"]["runner_up"]["series_number"] == 3
    assert "min later" in intake["repeats"]["flair"]["decision"]
    assert [(d["series_instance_uid"], d["pixels"]) for d in intake["duplicates"]] == [
        (rescan_uid, "identical")]
    assert any(reason.startswith("DICOMDIR") for reason in intake["ignored_files"])
    for phi in ("DOE", "JOHN", "12345", "SYNTHETIC^PHANTOM", "GLIOEDGE-SYN-0001", "103500", "20240105"):
        assert phi not in text, phi
