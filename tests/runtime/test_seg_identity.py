"""The SEG's identity covers what the result depends on (DESIGN.md "Idempotent outputs")."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom

from glioedge.runtime import Segmenter, SegmenterConfig

NO_PP = SegmenterConfig(postprocess=False)


def _uids(seg: Segmenter, study: Path) -> tuple[str, str]:
    result = seg.segment_study(study)
    assert result.seg is not None
    return str(result.seg.SeriesInstanceUID), str(result.seg.SOPInstanceUID)


def test_changed_content_under_the_same_uids_gets_a_new_seg_and_a_rerun_the_same(
        trained_bundle: Path, synthetic_study: Path, tmp_path: Path) -> None:
    corrected = tmp_path / "corrected"
    shutil.copytree(synthetic_study, corrected)
    flair = sorted((corrected / "flair").glob("*.dcm"))
    for path in flair[len(flair) // 2 - 1: len(flair) // 2 + 2]:  # three FLAIR slices re-sent
        ds = pydicom.dcmread(path)
        ds.PixelData = (ds.pixel_array // 2).astype(ds.pixel_array.dtype).tobytes()
        ds.save_as(path, enforce_file_format=True)  # same SOP Instance UID, other pixels
    relabelled = tmp_path / "relabelled"
    shutil.copytree(synthetic_study, relabelled)
    for path in sorted(relabelled.rglob("*.dcm")):  # a corrected header on every series, same pixels
        ds = pydicom.dcmread(path)
        ds.PatientName = "CORRECTED^NAME"
        ds.save_as(path, enforce_file_format=True)
    with Segmenter.from_bundle(trained_bundle, "onnxruntime", "cpu", NO_PP) as seg:
        first = _uids(seg, synthetic_study)
        again = _uids(seg, synthetic_study)
        changed = _uids(seg, corrected)
        renamed = _uids(seg, relabelled)
        in_memory = seg.segment_study([pydicom.dcmread(p) for p in sorted(synthetic_study.rglob("*.dcm"))])
    assert again == first  # a re-run (e.g. after a crash) is the same object: a PACS stores it once
    assert str(in_memory.seg.SeriesInstanceUID) == first[0]  # files or datasets: same identity
    assert changed[0] != first[0] and changed[1] != first[1]
    assert renamed[0] != first[0] and renamed[1] != first[1]  # the SEG copies the patient module
    assert len({first, changed, renamed}) == 3
