"""``glioedge evaluate`` end to end on DICOM studies: glioedge's SEGs against a site's SEGs.

Each study holds a T1CE series; the prediction is a SEG written by glioedge, the reference a SEG
as a site's viewer would save it (manual segments with the site's own names and codes), mapped to
NCR/ED/ET with a segment mapping file. Both SEGs omit empty frames, so they span different
slices and are compared on a common physical grid.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.sequence import Sequence
from scipy.ndimage import binary_erosion

from glioedge.cli import main
from glioedge.dicom_io import deterministic_uid, load_series, write_seg
from glioedge.metrics import EVAL_REGIONS, evaluate_case
from glioedge.synth import StudyInfo, synthetic_series
from glioedge.synth.phantom import grid_affine, phantom_image, phantom_labels

SHAPE, SPACING = (40, 44, 18), (4.0, 3.5, 5.0)
#: The site's segments: label, and a code that glioedge does not know.
SITE_SEGMENTS = {1: ("Nekrose", "SCT", "112640000"), 2: ("Oedem", "SCT", "423341008"),
                 3: ("KM-Anreicherung", "SCT", "108369006")}
SITE_MAP = {"segments": {"nekrose": "NCR", "SCT:423341008": "ED", "KM-Anreicherung": "ET"}}


def _site_seg(seg: pydicom.Dataset) -> pydicom.Dataset:
    """Turn a glioedge SEG into what a site's viewer saves: manual segments, local names and codes."""
    for item in seg.SegmentSequence:
        label, scheme, value = SITE_SEGMENTS[int(item.SegmentNumber)]
        item.SegmentLabel = label
        code = item.SegmentedPropertyTypeCodeSequence[0]
        code.CodingSchemeDesignator, code.CodeValue, code.CodeMeaning = scheme, value, label
        item.SegmentAlgorithmType = "MANUAL"
        del item.SegmentationAlgorithmIdentificationSequence
        if "SegmentAlgorithmName" in item:
            del item.SegmentAlgorithmName
    seg.ContentCreatorName = "SITE^READER"
    return seg


def _study(root: Path, n: int, orientation: str) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    study = StudyInfo(study_instance_uid=deterministic_uid("eval-study", n),
                      frame_of_reference_uid=deterministic_uid("eval-for", n))
    affine = grid_affine(SHAPE, SPACING, orientation, centre=(20.0, -5.0, 10.0))
    datasets = synthetic_series(phantom_image(SHAPE, affine, "t1ce"), affine, modality="t1ce",
                                study=study, series_number=7)
    volume = load_series(datasets)
    truth = phantom_labels(SHAPE, volume.affine)[1]
    pred = truth.copy()  # the prediction misses the outer edema shell and half of the ET rim
    pred[(truth == 2) & ~binary_erosion(truth > 0, iterations=1)] = 0
    pred[(truth == 3) & (np.indices(SHAPE)[0] < SHAPE[0] // 2)] = 2
    for folder in (root / "truth" / f"study{n}", root / "pred" / f"study{n}"):
        folder.mkdir(parents=True)
    for k, ds in enumerate(datasets):  # the site's study: images and its SEG
        ds.save_as(root / "truth" / f"study{n}" / f"img{k:03d}.dcm", enforce_file_format=True)
    write_seg(pred, datasets, bundle_id="bundle-1").save_as(root / "pred" / f"study{n}" / "seg.dcm")
    site = write_seg(truth, datasets, series_number=300, series_description="Tumour (reader)",
                     series_instance_uid=deterministic_uid("site-seg", n),
                     sop_instance_uid=deterministic_uid("site-seg-instance", n))
    _site_seg(site).save_as(root / "truth" / f"study{n}" / "reader-seg.dcm")
    return pred, truth, tuple(float(s) for s in volume.spacing)


@pytest.fixture
def studies(tmp_path: Path) -> dict[str, tuple[np.ndarray, np.ndarray, tuple[float, ...]]]:
    return {deterministic_uid("eval-study", n): _study(tmp_path, n, o)
            for n, o in ((1, "axial"), (2, "oblique"))}


def _argv(tmp_path: Path, *extra: str) -> list[str]:
    return ["evaluate", "--pred", str(tmp_path / "pred"), "--truth", str(tmp_path / "truth"),
            "--out", str(tmp_path / "out"), "--no-figure", *extra]


def test_site_segs_mapped_by_a_mapping_file(studies: dict, tmp_path: Path) -> None:
    mapping = tmp_path / "site-segments.json"
    mapping.write_text(json.dumps(SITE_MAP))
    assert main(_argv(tmp_path, "--segment-map", str(mapping))) == 0
    with (tmp_path / "out" / "cases.csv").open(newline="") as fh:
        rows = {(r["case"], r["region"]): r for r in csv.DictReader(fh)}
    assert {case for case, _ in rows} == set(studies)
    for study, (pred, truth, spacing) in studies.items():
        expected = evaluate_case(pred, truth, spacing, EVAL_REGIONS, full=True)
        for region, m in expected.items():
            assert float(rows[(study, region)]["dice"]) == pytest.approx(m.dice, abs=1e-12)
            assert float(rows[(study, region)]["hd95"]) == pytest.approx(m.hd95, abs=1e-9)
            assert int(rows[(study, region)]["voxels_ref"]) == m.voxels_ref > 0
        assert 0.3 < expected["WT"].dice < 0.99  # a real disagreement, not a trivial 1.0


def test_an_unmapped_site_segment_is_an_error_naming_it(studies: dict, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="glioedge"):
        assert main(_argv(tmp_path)) == 2
    assert "'NEKROSE'" in caplog.text and "SCT:112640000" in caplog.text
    # A mapping that leaves one segment out names that one.
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"segments": {"Nekrose": "NCR", "Oedem": "ED"}}))
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="glioedge"):
        assert main(_argv(tmp_path, "--segment-map", str(partial))) == 2
    assert "'KM-ANREICHERUNG'" in caplog.text and "nor in the segment mapping" in caplog.text


@pytest.mark.parametrize(("content", "says"), [
    ("{not json", "not valid JSON"),
    ('{"segments": {"Oedem": "edema"}}', "mapped to NCR, ED, ET or ignore"),
    ('{"Oedem": "ED"}', '{"segments":'),
])
def test_a_bad_mapping_file_exits_2(content: str, says: str, tmp_path: Path,
                                    caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "pred").mkdir()
    (tmp_path / "truth").mkdir()
    bad = tmp_path / "map.json"
    bad.write_text(content)
    with caplog.at_level(logging.ERROR, logger="glioedge"):
        assert main(_argv(tmp_path, "--segment-map", str(bad))) == 2
    assert says in caplog.text


def test_a_study_without_prediction_is_named(studies: dict, tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    missing = deterministic_uid("eval-study", 2)
    for f in (tmp_path / "pred" / "study2").iterdir():
        f.unlink()
    mapping = tmp_path / "m.json"
    mapping.write_text(json.dumps(SITE_MAP))
    with caplog.at_level(logging.ERROR, logger="glioedge"):
        assert main(_argv(tmp_path, "--segment-map", str(mapping))) == 2
    assert missing in caplog.text


def test_the_site_seg_is_really_foreign(studies: dict, tmp_path: Path) -> None:
    """The reference SEG carries none of glioedge's labels or codes (else the mapping proves nothing)."""
    ds = pydicom.dcmread(next((tmp_path / "truth").rglob("reader-seg.dcm")))
    labels = {s.SegmentLabel for s in ds.SegmentSequence}
    codes = {s.SegmentedPropertyTypeCodeSequence[0].CodeValue for s in ds.SegmentSequence}
    assert labels.isdisjoint({"NCR", "ED", "ET"}) and codes.isdisjoint({"6574001", "79654002", "C113842"})
    assert isinstance(ds.SegmentSequence, Sequence)


def test_a_prediction_on_another_series_is_compared_in_physical_space(tmp_path: Path) -> None:
    """Reference SEG on a sagittal 3-D T1CE, prediction SEG on an axial 2-D FLAIR of the same
    study (same Frame of Reference, other grid): both are the same analytic tumour, so they agree
    up to the sampling of the coarser grid; the reference keeps every one of its voxels."""
    study = StudyInfo(study_instance_uid=deterministic_uid("eval-xseries", 1),
                      frame_of_reference_uid=deterministic_uid("eval-xseries-for", 1))
    series = {}
    for name, shape, spacing, orientation, number in (
            ("t1ce", (36, 44, 40), (2.5, 2.5, 2.5), "sagittal", 7),
            ("flair", (56, 60, 14), (1.8, 1.8, 5.0), "axial", 3)):
        affine = grid_affine(shape, spacing, orientation, centre=(20.0, -5.0, 10.0))
        datasets = synthetic_series(phantom_image(shape, affine, name), affine, modality=name,
                                    study=study, series_number=number)
        volume = load_series(datasets)
        series[name] = (datasets, phantom_labels(shape, volume.affine)[1])
    (tmp_path / "truth").mkdir()
    (tmp_path / "pred").mkdir()
    t1ce, truth = series["t1ce"]
    flair, pred = series["flair"]
    site = write_seg(truth, t1ce, series_instance_uid=deterministic_uid("x-site", 1),
                     sop_instance_uid=deterministic_uid("x-site", 2))
    _site_seg(site).save_as(tmp_path / "truth" / "seg.dcm")
    write_seg(pred, flair, bundle_id="b").save_as(tmp_path / "pred" / "seg.dcm")
    mapping = tmp_path / "m.json"
    mapping.write_text(json.dumps(SITE_MAP))
    assert main(_argv(tmp_path, "--segment-map", str(mapping))) == 0
    with (tmp_path / "out" / "cases.csv").open(newline="") as fh:
        rows = {r["region"]: r for r in csv.DictReader(fh)}
    assert int(rows["WT"]["voxels_ref"]) == int((truth > 0).sum())
    assert int(rows["ET"]["voxels_ref"]) == int((truth == 3).sum())
    # Measured: WT 0.95, TC 0.91, ET 0.81 (the ET rim is 5 mm thick, one FLAIR slice).
    assert float(rows["WT"]["dice"]) > 0.9
    assert float(rows["TC"]["dice"]) > 0.85
    assert float(rows["ET"]["dice"]) > 0.7
    # Volumes agree within the sampling of a 5 mm slice grid.
    assert abs(float(rows["WT"]["volume_rel_diff"])) < 0.05
