"""A catalogue of bad inputs, each with its specific error."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from glioedge.dicom_io import ModalityRules, load_series, load_study, scan_folder
from glioedge.dicom_io.uids import deterministic_uid
from glioedge.errors import InputError
from glioedge.synth.dicom_writer import StudyInfo


def _series(folder: Path):
    return next(iter(scan_folder(folder)[0].series.values()))


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        scan_folder(tmp_path / "nope")


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no DICOM file found .* \(0 files"):
        scan_folder(tmp_path)


def test_non_dicom_junk_only(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n" + bytes(300))
    with pytest.raises(InputError, match=r"no DICOM file found .* \(2 files"):
        scan_folder(tmp_path)


def test_junk_and_non_image_sop_classes_are_skipped(write_series, tmp_path: Path, caplog) -> None:
    paths = write_series("flair", folder="mixed")
    (paths[0].parent / "README").write_text("junk")
    sr = Dataset()
    sr.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.22"  # Enhanced SR
    sr.SOPInstanceUID = deterministic_uid("sr")
    sr.StudyInstanceUID = StudyInfo().study_instance_uid
    sr.SeriesInstanceUID = deterministic_uid("sr-series")
    sr.Modality = "SR"
    sr.file_meta = FileMetaDataset()
    sr.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    sr.save_as(paths[0].parent / "sr.dcm", enforce_file_format=True)
    with caplog.at_level("DEBUG", logger="glioedge.dicom_io.discovery"):
        studies = scan_folder(paths[0].parent)
    assert len(studies) == 1 and len(studies[0].series) == 1
    assert "not a DICOM file" in caplog.text and "is not an MR image" in caplog.text


def test_only_non_images(tmp_path: Path) -> None:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.11.1"  # grayscale presentation state
    with pytest.raises(InputError, match=r"no MR image .* found 1× Grayscale Softcopy"):
        from glioedge.dicom_io import group_datasets

        group_datasets([ds])


def test_truncated_file(write_series) -> None:
    paths = write_series("flair")
    data = paths[3].read_bytes()
    paths[3].write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"truncated|cannot be decoded"):
        load_series(_series(paths[0].parent))


def test_truncated_header(write_series) -> None:
    paths = write_series("flair")
    paths[2].write_bytes(paths[2].read_bytes()[:300])
    with pytest.raises(InputError, match=r"no SOPClassUID .* truncated"):
        load_series(_series(paths[0].parent))


def test_missing_slice(write_series) -> None:
    paths = write_series("flair")
    paths[4].unlink()
    with pytest.raises(InputError, match=r"slice missing: spacing is 6.00 mm but 12.00 mm .* "
                                         r"1 slice\(s\) missing"):
        load_series(_series(paths[0].parent))


def test_duplicated_slice(write_series) -> None:
    paths = write_series("flair")
    ds = pydicom.dcmread(paths[2])
    ds.SOPInstanceUID = deterministic_uid("copy")
    ds.save_as(paths[0].parent / "copy.dcm", enforce_file_format=True)
    with pytest.raises(InputError, match="duplicated slice"):
        load_series(_series(paths[0].parent))


def test_mixed_orientation(write_series) -> None:
    paths = write_series("flair")
    ds = pydicom.dcmread(paths[5])
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    ds.save_as(paths[5], enforce_file_format=True)
    with pytest.raises(InputError, match="mixed orientations within the series"):
        load_series(_series(paths[0].parent))


def test_uneven_spacing(write_series) -> None:
    paths = write_series("flair")
    ds = pydicom.dcmread(paths[3])
    ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1],
                               ds.ImagePositionPatient[2] + 2.0]
    ds.save_as(paths[3], enforce_file_format=True)
    with pytest.raises(InputError, match="slice spacing varies"):
        load_series(_series(paths[0].parent))


def test_two_frames_of_reference_in_one_series(write_series) -> None:
    paths = write_series("flair")
    ds = pydicom.dcmread(paths[1])
    ds.FrameOfReferenceUID = deterministic_uid("other")
    ds.save_as(paths[1], enforce_file_format=True)
    with pytest.raises(InputError, match="2 frames of reference in one series"):
        load_series(_series(paths[0].parent))


def test_two_studies_mixed(write_series, tmp_path: Path) -> None:
    write_series("flair", folder="in/a", series_number=1)
    other = dataclasses.replace(StudyInfo(), study_instance_uid=deterministic_uid("study 2"))
    write_series("t1ce", folder="in/b", series_number=2, study=other)
    with pytest.raises(InputError, match="holds 2 studies, expected exactly one"):
        load_study(tmp_path / "in")


def test_only_flair_present(write_series, tmp_path: Path) -> None:
    write_series("flair", folder="in/a", series_number=1)
    write_series("t2", folder="in/b", series_number=2)
    with pytest.raises(InputError, match=r"no T1CE series found among 2 series: .*'AX FLAIR'"):
        load_study(tmp_path / "in")


def test_two_flair_candidates(write_series, tmp_path: Path) -> None:
    write_series("flair", folder="in/a", series_number=1)
    write_series("flair", folder="in/b", series_number=2)
    write_series("t1ce", folder="in/c", series_number=3)
    # Two series of one protocol: a repeated acquisition. The default takes the later one; the
    # rule option refuses (tests/dicom_io/test_intake.py covers the choice itself).
    with pytest.raises(InputError, match=r"2 FLAIR candidates tie at score 20.*refuse.*pin one"):
        load_study(tmp_path / "in", rules=ModalityRules(repeats="refuse"))


def test_mismatched_frames_of_reference(write_series, tmp_path: Path) -> None:
    write_series("flair", folder="in/a", series_number=1)
    write_series("t1ce", folder="in/b", series_number=2,
                 study=dataclasses.replace(StudyInfo(),
                                           frame_of_reference_uid=deterministic_uid("FoR 2")))
    with pytest.raises(InputError, match=r"frames of reference differ .* rigid registration"):
        load_study(tmp_path / "in")


def test_errors_on_read_datasets_name_their_files(tmp_path: Path) -> None:
    """Datasets read from files keep their paths in messages even when passed in memory."""
    import re

    import numpy as np

    from glioedge.dicom_io.discovery import dataset_source
    from glioedge.synth import write_synthetic_series

    vol = np.arange(4 * 4 * 3, dtype=np.uint16).reshape(4, 4, 3)
    paths = write_synthetic_series(tmp_path / "s", vol, np.eye(4), modality="t1ce")
    datasets = [pydicom.dcmread(p) for p in paths]
    assert dataset_source(datasets[0], 0) == str(paths[0])
    del datasets[1].PixelData  # a header without pixels: they are read from its file, now gone
    paths[1].unlink()
    with pytest.raises(InputError, match=re.escape(str(paths[1].name)) + ".*disappeared"):
        load_series(datasets)
