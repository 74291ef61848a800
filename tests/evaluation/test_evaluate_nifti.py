"""``glioedge evaluate`` end to end on folders of BraTS-named NIfTI label maps."""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest

from glioedge.cli import main
from glioedge.data.labels import to_internal
from glioedge.dicom_io.volume import Volume, make_affine
from glioedge.metrics import EVAL_REGIONS, OFFICIAL_REGION_NAMES, evaluate_case
from tests.metrics.catalogue import CASES, Case
from tests.metrics.official import FIELD_TO_OFFICIAL, official_results

#: Three catalogue cases: several lesions, anisotropic voxels, a missed tumour.
NAMES = ("several_lesions_of_different_sizes", "anisotropic_1x1x2", "false_negative_only")


def _cases() -> list[Case]:
    return [next(b() for b in CASES if b().name == n) for n in NAMES]


def _write(path: Path, labels: np.ndarray, spacing: tuple[float, ...], origin=(10.0, -20.0, 5.0)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Volume(labels.astype(np.uint8), make_affine(origin, spacing)).to_nifti(path)


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """BraTS 2023 names: truth in case folders (with an image to skip), predictions flat."""
    truth, pred = tmp_path / "truth", tmp_path / "pred"
    for n, case in enumerate(_cases()):
        cid = f"BraTS-GLI-{n:05d}-000"
        _write(truth / cid / f"{cid}-seg.nii.gz", case.ref, case.spacing)
        _write(truth / cid / f"{cid}-t1c.nii.gz", case.ref * 100, case.spacing)  # an image: skipped
        _write(pred / f"{cid}.nii.gz", case.pred, case.spacing)
    return pred, truth


def _rows(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    with path.open(newline="") as fh:
        return {(r["case"], r["region"]): r for r in csv.DictReader(fh)}


def _num(text: str) -> float:
    return math.nan if text == "" else float(text)


def test_nifti_folders_give_the_metrics_of_the_label_maps(folders: tuple[Path, Path], tmp_path: Path) -> None:
    pred, truth = folders
    out = tmp_path / "out"
    assert main(["evaluate", "--pred", str(pred), "--truth", str(truth), "--out", str(out)]) == 0
    rows = _rows(out / "cases.csv")
    assert len(rows) == len(NAMES) * len(EVAL_REGIONS)
    for n, case in enumerate(_cases()):
        expected = evaluate_case(to_internal(case.pred, "brats2023", source="p"),
                                 to_internal(case.ref, "brats2023", source="r"), case.spacing,
                                 EVAL_REGIONS, full=True)
        for region, m in expected.items():
            row = rows[(f"BraTS-GLI-{n:05d}-000", region)]
            for field, value in m.scalars().items():
                assert _num(row[field]) == pytest.approx(value, abs=1e-9, nan_ok=True), (
                    case.name, region, field)
    summary = json.loads((out / "summary.json").read_text())
    wt = summary["regions"]["WT"]["dice"]
    assert summary["n_cases"] == 3 and wt["n"] == 3
    assert wt["ci95_low"] <= wt["mean"] <= wt["ci95_high"]
    assert wt["q1"] <= wt["median"] <= wt["q3"]
    cases = json.loads((out / "cases.json").read_text())["cases"]
    assert [len(c["regions"]["ET"]["lesions"]) for c in cases] == [3, 2, 1]
    with (out / "summary.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == len(EVAL_REGIONS) * 20
    png = (out / "evaluation.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000


def test_official_mode_on_files_equals_the_official_package(folders: tuple[Path, Path],
                                                            tmp_path: Path) -> None:
    """The whole reading path (NIfTI → LPS volume → metrics) against the official package."""
    pred, truth = folders
    out = tmp_path / "out"
    assert main(["evaluate", "--pred", str(pred), "--truth", str(truth), "--out", str(out), "--official",
                 "--no-figure"]) == 0
    assert not (out / "evaluation.png").exists()
    rows = _rows(out / "cases.csv")
    checked = 0
    for n, case in enumerate(_cases()):
        official, _ = official_results(case.pred, case.ref, case.spacing, tmp_path / "official", f"c{n}")
        for region, group in OFFICIAL_REGION_NAMES.items():
            row = rows[(f"BraTS-GLI-{n:05d}-000", region)]
            for field, key in FIELD_TO_OFFICIAL.items():
                theirs = official[group].get(key)
                theirs = math.nan if theirs is None else float(theirs)
                ours = _num(row[field])
                assert ours == pytest.approx(theirs, abs=1e-4, nan_ok=True), (case.name, region, field)
                checked += 1
    assert checked == 3 * 5 * len(FIELD_TO_OFFICIAL)


def test_the_prediction_is_compared_in_physical_space_not_by_index(tmp_path: Path) -> None:
    # The prediction is the reference cropped to a smaller box with the origin moved to match: the
    # same voxels in space, different arrays. Compared by geometry it is perfect.
    case = next(b() for b in CASES if b().name == "several_lesions_of_different_sizes")
    spacing = (1.0, 1.2, 2.0)
    _write(tmp_path / "truth" / "c1_seg.nii.gz", case.ref, spacing, origin=(0.0, 0.0, 0.0))
    _write(tmp_path / "pred" / "c1.nii.gz", case.ref[2:, 1:, 1:], spacing, origin=(2.0, 1.2, 2.0))
    out = tmp_path / "out"
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--truth", str(tmp_path / "truth"),
                 "--out", str(out), "--no-figure"]) == 0
    rows = _rows(out / "cases.csv")
    assert all(_num(rows[("c1", r)]["dice"]) == 1.0 for r in ("WT", "TC", "ET"))
    # ... and a prediction reaching beyond the reference grid grows the grid instead of being cut.
    bigger = np.pad(case.ref, 3)
    bigger[0:2, 0:2, 0:2] = 3  # a false positive outside the reference's field of view
    _write(tmp_path / "pred" / "c1.nii.gz", bigger, spacing, origin=(-3.0, -3.6, -6.0))
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--truth", str(tmp_path / "truth"),
                 "--out", str(out), "--no-figure"]) == 0
    et = _rows(out / "cases.csv")[("c1", "ET")]
    assert _num(et["lesion_fp"]) == 1 and _num(et["voxels_pred"]) == _num(et["voxels_ref"]) + 8


def test_brats2021_labels(tmp_path: Path) -> None:
    case = next(b() for b in CASES if b().name == "brats2021_labels")
    _write(tmp_path / "truth" / "BraTS2021_00001" / "BraTS2021_00001_seg.nii.gz", case.ref, case.spacing)
    _write(tmp_path / "pred" / "BraTS2021_00001.nii.gz", case.pred, case.spacing)
    argv = ["evaluate", "--pred", str(tmp_path / "pred"), "--truth", str(tmp_path / "truth"),
            "--out", str(tmp_path / "out"), "--no-figure"]
    assert main([*argv, "--labels", "brats2021"]) == 0
    et = _rows(tmp_path / "out" / "cases.csv")[("BraTS2021_00001", "ET")]
    assert _num(et["voxels_ref"]) == int((case.ref == 4).sum()) > 0


@pytest.mark.parametrize(("layout", "says"), [
    ("missing prediction", "no prediction in --pred"),
    ("wrong convention", "label values [4] are not part of the brats2023 convention"),
    ("mixed kinds", "both must be NIfTI label maps or both DICOM"),
    ("two maps for one case", "two label maps for case 'c1'"),
])
def test_bad_input_exits_2_with_a_specific_message(layout: str, says: str, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    ref = np.zeros((8, 8, 8), np.uint8)
    ref[2:5, 2:5, 2:5] = 4 if layout == "wrong convention" else 3
    _write(tmp_path / "truth" / "c1_seg.nii.gz", ref, (1, 1, 1))
    if layout == "missing prediction":
        _write(tmp_path / "pred" / "c2.nii.gz", ref, (1, 1, 1))
    elif layout == "mixed kinds":
        (tmp_path / "pred").mkdir()
        (tmp_path / "pred" / "seg.dcm").write_bytes(b"not nifti")
    else:
        _write(tmp_path / "pred" / "c1.nii.gz", ref, (1, 1, 1))
    if layout == "two maps for one case":
        _write(tmp_path / "pred" / "c1-pred.nii.gz", ref, (1, 1, 1))
    with caplog.at_level(logging.ERROR, logger="glioedge"):
        code = main(["evaluate", "--pred", str(tmp_path / "pred"), "--truth", str(tmp_path / "truth"),
                     "--out", str(tmp_path / "out"), "--no-figure"])
    assert code == 2
    assert says in caplog.text
    assert not (tmp_path / "out" / "cases.csv").exists()


def test_an_nnunet_dataset_pairs_by_its_label_names(tmp_path: Path) -> None:
    # nnU-Net raw layout: images (case_0000.nii.gz …) in imagesTr, labels named by the case id.
    ref = np.zeros((8, 8, 8), np.uint8)
    ref[2:5, 2:5, 2:5] = 3
    _write(tmp_path / "truth" / "labelsTr" / "BRATS_0001.nii.gz", ref, (1, 1, 1))
    _write(tmp_path / "truth" / "imagesTr" / "BRATS_0001_0000.nii.gz", ref * 50, (1, 1, 1))
    _write(tmp_path / "pred" / "BRATS_0001.nii.gz", ref, (1, 1, 1))
    out = tmp_path / "out"
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--truth", str(tmp_path / "truth"),
                 "--out", str(out), "--no-figure"]) == 0
    assert _num(_rows(out / "cases.csv")[("BRATS_0001", "ET")]["dice"]) == 1.0


def test_acceptance_checks_exit_1_when_one_fails_after_writing_everything(
        folders: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pred, truth = folders
    out = tmp_path / "out"
    base = ["evaluate", "--pred", str(pred), "--truth", str(truth), "--out", str(out), "--no-figure"]
    assert main([*base, "--require", "WT:dice>=0.5", "--require", "ET:hd95:median<=400"]) == 0
    checks = json.loads((out / "summary.json").read_text())["checks"]
    assert [c["passed"] for c in checks] == [True, True]
    with caplog.at_level(logging.ERROR, logger="glioedge"):
        assert main([*base, "--require", "WT:dice>=0.5", "--require", "TC:dice:ci95_low>=0.999"]) == 1
    assert "TC:dice:ci95_low>=0.999 measured" in caplog.text
    checks = json.loads((out / "summary.json").read_text())["checks"]
    assert [c["passed"] for c in checks] == [True, False]
    assert (out / "cases.csv").exists()
    for bad, says in (("WT:dice>0.5", "expected REGION:METRIC"), ("XX:dice>=0.5", "unknown region"),
                      ("WT:dise>=0.5", "unknown metric"), ("WT:dice:mode>=0.5", "unknown statistic")):
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="glioedge"):
            assert main([*base, "--require", bad]) == 2
        assert says in caplog.text
