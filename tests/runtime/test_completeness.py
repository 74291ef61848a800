"""A series that arrived in part: ImagesInAcquisition and coverage say so, for the daemon (which
holds the study), ``glioedge segment`` and the Python API (report.json, SEG description)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from glioedge.dicom_io import group_datasets, identify_modalities
from glioedge.dicom_io.completeness import INCOMPLETE_MARK, check_completeness
from glioedge.runtime import Segmenter, SegmenterConfig
from glioedge.runtime.daemon.inbox import missing_series


def _headers(study: Path) -> list[Dataset]:
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(study.rglob("*.dcm"))]


def _findings(headers: list[Dataset]) -> list:
    study = group_datasets(headers)[0]
    return check_completeness(identify_modalities(study, ("flair", "t1ce"), ()).chosen)


def _truncate_t1ce(study: Path, keep: float = 0.5, images_in_acquisition: bool = False) -> int:
    """Delete the upper part of the T1CE series (as if its last slices had not arrived yet)."""
    files = sorted((study / "t1ce").glob("*.dcm"),
                   key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]))
    total = len(files)
    if images_in_acquisition:
        for path in files:
            ds = pydicom.dcmread(path)
            ds.ImagesInAcquisition = total
            ds.save_as(path, enforce_file_format=True)
    for path in files[int(total * keep):]:
        path.unlink()
    return total


def test_a_whole_study_has_no_findings(synthetic_study: Path) -> None:
    assert _findings(_headers(synthetic_study)) == []


def test_a_series_cut_short_of_the_others_is_found(synthetic_study: Path, tmp_path: Path) -> None:
    study = tmp_path / "s"
    shutil.copytree(synthetic_study, study)
    _truncate_t1ce(study)
    findings = _findings(_headers(study))
    assert [(f.modality, f.kind) for f in findings] == [("t1ce", "coverage")]
    assert "short of the FLAIR series at its last slice" in findings[0].message
    # the daemon holds such a study (contiguous slices, yet cut) until max_wait
    reason = missing_series(_headers(study), ("flair", "t1ce"))
    assert "short of the FLAIR series" in reason


def test_fewer_images_than_the_acquisition_made_is_found(synthetic_study: Path, tmp_path: Path) -> None:
    study = tmp_path / "s"
    shutil.copytree(synthetic_study, study)
    total = _truncate_t1ce(study, keep=0.9, images_in_acquisition=True)
    kinds = {f.kind: f.message for f in _findings(_headers(study))}
    assert f"{int(total * 0.9)} of {total} images (ImagesInAcquisition" in kinds["images_in_acquisition"]


def test_segment_reports_and_marks_an_incomplete_input(trained_bundle: Path, synthetic_study: Path,
                                                       tmp_path: Path) -> None:
    study = tmp_path / "s"
    shutil.copytree(synthetic_study, study)
    _truncate_t1ce(study)
    with Segmenter.from_bundle(trained_bundle, "onnxruntime", "cpu",
                               SegmenterConfig(postprocess=False)) as seg:
        result = seg.segment_study(study)
    files = result.write(tmp_path / "out")
    report = json.loads(Path(files["report"]).read_text())
    completeness = report["intake"]["completeness"]
    assert completeness["complete"] is False and completeness["findings"][0]["kind"] == "coverage"
    assert str(result.seg.SeriesDescription).endswith(INCOMPLETE_MARK)
