"""Clinical intake: DICOMDIR exports, resent instances, repeated acquisitions, headers first."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.fileset import FileSet

from glioedge.dicom_io import ModalityRules, group_datasets, load_rules, load_study, scan_folder
from glioedge.dicom_io.headers import has_pixels
from glioedge.dicom_io.uids import deterministic_uid
from glioedge.errors import ConfigError, InputError

from .conftest import FLAIR_GRID, T1CE_GRID

WriteSeries = Callable[..., list[Path]]


def _small_study(write_series: WriteSeries, root: str = "study", **flair: object) -> Path:
    """FLAIR (MR Image Storage, 10 files) + T1CE (Enhanced MR, 1 file) below ``tmp/root``."""
    paths = write_series("flair", series_number=3, folder=f"{root}/flair", **{**FLAIR_GRID, **flair})
    write_series("t1ce", series_number=7, folder=f"{root}/t1ce", storage="enhanced", **T1CE_GRID)
    return paths[0].parent.parent


# ---- DICOMDIR ---------------------------------------------------------------------------------
def test_pydicom_dicomdir_sets_in_a_study_are_ignored_with_reason(
        write_series: WriteSeries) -> None:
    """pydicom's DICOMDIR test sets (8 indexes in several encodings, CT/CR files) at the root of an
    MR study: the study loads; each DICOMDIR is ignored as an index; the CT/CR files as non-MR."""
    study = _small_study(write_series)
    source = Path(get_testdata_file("DICOMDIR")).parent  # pydicom's dicomdirtests folder
    shutil.copytree(source, study, dirs_exist_ok=True)
    indexes = sorted(p.relative_to(study) for p in study.rglob("DICOMDIR*"))
    assert len(indexes) >= 7
    loaded = load_study(study)
    status = loaded.file_status()
    for rel in indexes:
        assert status[str(study / rel)].startswith("ignored: DICOMDIR (Media Storage Directory)")
    assert status[str(study / "DICOMDIR")].endswith("lists 31 file(s)")
    assert status[str(study / "DICOMDIR-nopatient")].endswith("lists 31 file(s)")  # malformed
    # pydicom's sets hold MR localisers of three other studies: ignored, ours is the complete one.
    others = [v for v in status.values() if "another study" in v]
    assert len(others) >= 5
    assert sum(v == "used" for v in status.values()) == 11  # 10 FLAIR slices + 1 Enhanced T1CE
    assert not [p for p, v in status.items() if not v.startswith(("used", "ignored: "))]
    assert loaded.intake["ignored_files"]
    json.dumps(loaded.intake)
    assert str(study) not in json.dumps(loaded.intake)  # no paths in the report record


def _dicomdir_export(src: Path, out: Path) -> Path:
    """A CD/viewer-style export of ``src``: PT*/ST*/SE*/IM* files and a DICOMDIR (pydicom)."""
    fs = FileSet()
    for path in sorted(src.rglob("*.dcm")):
        fs.add(pydicom.dcmread(path))
    fs.write(out)
    return out


def test_nested_dicomdir_export_loads(write_series: WriteSeries, tmp_path: Path) -> None:
    export = _dicomdir_export(_small_study(write_series), tmp_path / "cd")
    assert (export / "DICOMDIR").is_file()
    images = [p for p in export.rglob("*") if p.is_file() and p.name != "DICOMDIR"]
    assert len(images) == 11 and all(p.relative_to(export).parts[0].startswith("PT") for p in images)
    assert all(len(p.relative_to(export).parts) == 4 for p in images)  # PT*/ST*/SE*/IM*
    loaded = load_study(export)
    assert loaded.volumes["flair"].shape == loaded.volumes["t1ce"].shape
    assert loaded.file_status()[str(export / "DICOMDIR")].endswith("lists 11 file(s)")
    assert loaded.intake["instances_used"] == 11


def test_dicomdir_listing_missing_files_is_reported(write_series: WriteSeries,
                                                    tmp_path: Path) -> None:
    export = _dicomdir_export(_small_study(write_series), tmp_path / "cd")
    enhanced = max((p for p in export.rglob("IM*")), key=lambda p: p.stat().st_size)
    enhanced.unlink()  # the T1CE: the export is incomplete
    with pytest.raises(InputError, match="no T1CE series"):
        load_study(export)
    ignored = scan_folder(export)[0].ignored
    assert [i.reason for i in ignored] == [
        "DICOMDIR (Media Storage Directory): an index of the file-set, not an image; lists 11 "
        "file(s), 1 of them missing from the folder (incomplete export?)"]


def test_several_studies_the_complete_one_is_used(write_series: WriteSeries) -> None:
    """A CD with a prior study (FLAIR only): ours is the only complete one; the prior is ignored."""
    import dataclasses

    from glioedge.synth import StudyInfo

    study = _small_study(write_series)
    prior = dataclasses.replace(StudyInfo(), study_instance_uid=deterministic_uid("prior"))
    write_series("flair", series_number=2, folder="study/prior", study=prior, **FLAIR_GRID)
    loaded = load_study(study)
    assert loaded.volumes["flair"].study_instance_uid == StudyInfo().study_instance_uid
    reasons = loaded.intake["ignored_files"]
    assert reasons == {"MR image of another study, which lacks the required series (FLAIR, T1CE)": 10}


# ---- the same instance twice ------------------------------------------------------------------
def test_study_dropped_twice_is_deduplicated(write_series: WriteSeries, tmp_path: Path) -> None:
    study = _small_study(write_series)
    shutil.copytree(study, tmp_path / "both" / "first")
    shutil.copytree(study, tmp_path / "both" / "second")
    once = load_study(study)
    twice = load_study(tmp_path / "both")  # not "duplicated slice"
    assert (twice.volumes["flair"].array == once.volumes["flair"].array).all()
    duplicates = twice.intake["duplicates"]
    assert len(duplicates) == 11 and {d["pixels"] for d in duplicates} == {"identical"}
    status = twice.file_status()
    second = [v for p, v in status.items() if "/second/" in p]
    assert second == ["ignored: second copy of an instance (pixel data identical)"] * 11


def test_resent_instance_kept_once_and_reported(write_series: WriteSeries) -> None:
    study = _small_study(write_series)
    flair = sorted((study / "flair").glob("*.dcm"))
    shutil.copy(flair[4], study / "resent.dcm")
    loaded = load_study(study)
    assert len(loaded.series["flair"].datasets) == 10
    assert loaded.intake["duplicates"] == [{
        "sop_instance_uid": pydicom.dcmread(flair[4]).SOPInstanceUID, "pixels": "identical",
        "series_instance_uid": loaded.series["flair"].series_instance_uid}]


def test_resent_instance_from_memory(write_series: WriteSeries) -> None:
    """The daemon path: datasets in memory (here read whole) with a resend among them."""
    study = _small_study(write_series)
    files = sorted(study.rglob("*.dcm"))
    datasets = [pydicom.dcmread(p) for p in [*files, files[2]]]
    loaded = load_study(datasets)
    assert len(loaded.intake["duplicates"]) == 1
    assert group_datasets(datasets)[0].duplicates[0].dropped == str(files[2])


def test_resent_instance_with_other_pixels_fails(write_series: WriteSeries) -> None:
    study = _small_study(write_series)
    flair = sorted((study / "flair").glob("*.dcm"))
    ds = pydicom.dcmread(flair[4])
    ds.PixelData = bytes(len(ds.PixelData))  # same SOPInstanceUID, other image
    ds.save_as(study / "resent.dcm", enforce_file_format=True)
    with pytest.raises(InputError, match=rf"SOPInstanceUID {ds.SOPInstanceUID} is in two files "
                                         r"with different pixel data: .*resent\.dcm"):
        load_study(study)


def test_resent_instance_with_other_geometry_fails(write_series: WriteSeries) -> None:
    study = _small_study(write_series)
    flair = sorted((study / "flair").glob("*.dcm"))
    ds = pydicom.dcmread(flair[4])
    ds.ImagePositionPatient = [float(v) + 5 for v in ds.ImagePositionPatient]
    ds.save_as(study / "resent.dcm", enforce_file_format=True)
    with pytest.raises(InputError, match=r"two files that differ in ImagePositionPatient"):
        load_study(study)


# ---- repeated acquisitions --------------------------------------------------------------------
def _with_repeat(write_series: WriteSeries, first: str, second: str, numbers=(3, 4)) -> Path:
    """A study whose FLAIR was run twice: series ``numbers`` acquired at ``first``/``second``."""
    for name, number, time in (("a", numbers[0], first), ("b", numbers[1], second)):
        write_series("flair", series_number=number, folder=f"study/flair_{name}",
                     series_instance_uid=deterministic_uid("repeat", name),
                     overrides={"AcquisitionTime": time}, **FLAIR_GRID)
    paths = write_series("t1ce", series_number=7, folder="study/t1ce", storage="enhanced",
                         **T1CE_GRID)
    return paths[0].parent.parent


def test_repeated_flair_later_acquisition_wins(write_series: WriteSeries, caplog) -> None:
    # The re-scan (acquired later) has the LOWER SeriesNumber: time decides before the number.
    study = _with_repeat(write_series, "103000", "101500")
    with caplog.at_level("INFO", logger="glioedge.dicom_io"):
        loaded = load_study(study)
    assert loaded.series["flair"].series_number == 3
    repeat = loaded.intake["repeats"]["flair"]
    assert repeat["chosen"]["series_number"] == 3 and repeat["runner_up"]["series_number"] == 4
    assert repeat["basis"] == "AcquisitionDate/AcquisitionTime"
    assert "15.0 min later" in repeat["decision"]
    assert "repeated acquisition" in caplog.text and "over series #4 'AX FLAIR'" in caplog.text
    for date_or_time in ("103000", "101500", "20240105"):  # dates are PHI: never logged/reported
        assert date_or_time not in caplog.text and date_or_time not in json.dumps(loaded.intake)
    series_4 = next(s for s in loaded.intake["series_not_used"] if s["series_number"] == 4)
    assert series_4["why"] == "not chosen"


def test_repeated_flair_same_time_higher_series_number(write_series: WriteSeries) -> None:
    loaded = load_study(_with_repeat(write_series, "101500", "101500"))
    assert loaded.series["flair"].series_number == 4
    assert loaded.intake["repeats"]["flair"]["basis"] == "SeriesNumber"


def test_repeated_flair_undecidable_is_an_error(write_series: WriteSeries) -> None:
    study = _with_repeat(write_series, "101500", "101500", numbers=(3, 3))
    with pytest.raises(InputError, match="neither acquisition time nor SeriesNumber"):
        load_study(study)


def test_repeats_refuse_rule(write_series: WriteSeries, tmp_path: Path) -> None:
    study = _with_repeat(write_series, "103000", "101500")
    rule_file = tmp_path / "rules.toml"
    rule_file.write_text('repeats = "refuse"\n')
    with pytest.raises(InputError, match=r"repeated acquisitions of one protocol .* "
                                         r"repeats = \"refuse\": pin one"):
        load_study(study, rules=rule_file)
    assert load_rules(rule_file).to_dict()["repeats"] == "refuse"
    with pytest.raises(ConfigError, match=r"repeats = 'newest'; expected one of latest, refuse"):
        ModalityRules.from_dict({"repeats": "newest"})


# ---- headers first ----------------------------------------------------------------------------
def test_unused_series_are_never_decoded(write_series: WriteSeries) -> None:
    """A DWI series with broken pixel data does not matter: only the chosen series are decoded."""
    study = _small_study(write_series)
    dwi = write_series("t2", series_number=9, folder="study/dwi",
                       overrides={"SeriesDescription": "AX DWI b1000"}, **FLAIR_GRID)
    for path in dwi:
        path.write_bytes(path.read_bytes()[:-200])  # pixel data truncated
    loaded = load_study(study)
    assert [s["description"] for s in loaded.intake["series_not_used"]] == ["AX DWI b1000"]
    all_series = loaded.study.series.values() if loaded.study else []
    assert not any(has_pixels(ds) for s in all_series for ds in s.datasets)  # headers only
    flair_broken = sorted((study / "flair").glob("*.dcm"))[5]
    flair_broken.write_bytes(flair_broken.read_bytes()[:-200])
    with pytest.raises(InputError, match=rf"{flair_broken.name}: pixel data cannot be"):
        load_study(study)


def test_unreadable_non_mr_object_is_ignored(write_series: WriteSeries) -> None:
    study = _small_study(write_series)
    shutil.copy(get_testdata_file("rtplan_truncated.dcm"), study / "plan.dcm")
    status = load_study(study).file_status()
    assert status[str(study / "plan.dcm")].startswith(("ignored: SOP class RT Plan Storage",
                                                       "ignored: unreadable header of a non-MR"))


def test_header_whose_file_changed_is_an_error(write_series: WriteSeries) -> None:
    """Pixel data completed from a file that now holds another instance: refused, not mixed in."""
    study = _small_study(write_series)
    flair = sorted((study / "flair").glob("*.dcm"))
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in study.rglob("*.dcm")]
    shutil.copy(flair[1], flair[2])  # flair[2] now holds flair[1]'s instance
    with pytest.raises(InputError, match=rf"{flair[2].name}: the file changed since its header was "
                                         r"read: SOPInstanceUID \(0008,0018\) is now"):
        load_study(headers)
