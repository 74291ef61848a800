"""Volume → DICOM series → volume: same array and affine, every orientation and storage class."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from glioedge.dicom_io import load_series, scan_folder
from glioedge.dicom_io.volume import Volume
from glioedge.synth import synthetic_series
from glioedge.synth.phantom import grid_affine, phantom_image


@pytest.mark.parametrize("storage", ["mr", "enhanced"])
@pytest.mark.parametrize("orientation", ["axial", "sagittal", "coronal", "oblique"])
def test_round_trip(storage: str, orientation: str) -> None:
    affine = grid_affine((20, 16, 7), (0.9, 0.9, 5.0), orientation, centre=(3.0, -7.0, 11.0))
    image = phantom_image((20, 16, 7), affine, "flair")
    datasets = synthetic_series(image, affine, modality="flair", storage=storage)
    random.Random(0).shuffle(datasets)  # order on disk says nothing
    volume = load_series(datasets)
    np.testing.assert_array_equal(volume.array, image)
    np.testing.assert_allclose(volume.affine, affine, atol=1e-5)
    assert volume.frame_of_reference_uid == datasets[0].FrameOfReferenceUID


def test_files_round_trip_and_identifiers(write_series) -> None:
    paths = write_series("t1ce", orientation="oblique", spacing=(1.0, 1.0, 1.0))
    study = scan_folder(paths[0].parent)[0]
    series = next(iter(study.series.values()))
    volume = load_series(series)
    first = pydicom.dcmread(paths[0])
    assert volume.study_instance_uid == first.StudyInstanceUID
    assert volume.series_instance_uid == first.SeriesInstanceUID
    assert len(volume.sop_instance_uids) == len(paths)
    assert volume.description == "T1 MPRAGE +C"


def test_rescale_slope_and_intercept_applied() -> None:
    affine = grid_affine((8, 8, 4), (2.0, 2.0, 3.0))
    values = np.linspace(-5.0, 7.5, 256, dtype=np.float64).reshape(8, 8, 4)
    for storage in ("mr", "enhanced"):
        datasets = synthetic_series(values, affine, storage=storage)
        assert storage == "enhanced" or "RescaleSlope" in datasets[0]
        volume = load_series(datasets)
        np.testing.assert_allclose(volume.array, values, atol=(12.5 / 4095) / 2 + 1e-4)


@pytest.mark.parametrize("storage", ["mr", "enhanced"])
@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless])
def test_compressed_transfer_syntaxes_decode(storage: str, syntax: str, tmp_path: Path) -> None:
    affine = grid_affine((40, 36, 3), (1.0, 1.0, 2.0), "coronal")
    image = phantom_image((40, 36, 3), affine, "t1ce")
    datasets = synthetic_series(image, affine, storage=storage, transfer_syntax=syntax)
    for n, ds in enumerate(datasets):
        assert ds.file_meta.TransferSyntaxUID == syntax
        ds.save_as(tmp_path / f"{n}.dcm", enforce_file_format=True)
    volume = load_series(next(iter(scan_folder(tmp_path)[0].series.values())))
    np.testing.assert_array_equal(volume.array, image)


def test_jpeg_lossless_decodes(tmp_path: Path) -> None:
    """JPEG Lossless (Process 14 SV1): written by GDCM through SimpleITK, read by pylibjpeg."""
    import SimpleITK as sitk  # noqa: N813

    array = phantom_image((16, 12, 1), np.eye(4), "t2")[:, :, 0].astype(np.uint16)
    image = sitk.GetImageFromArray(array.T.copy())
    writer = sitk.ImageFileWriter()
    writer.SetImageIO("GDCMImageIO")
    writer.SetFileName(str(tmp_path / "j.dcm"))
    writer.SetUseCompression(True)
    writer.SetCompressor("JPEG")
    writer.Execute(image)
    ds = pydicom.dcmread(tmp_path / "j.dcm")
    assert ds.file_meta.TransferSyntaxUID.is_compressed
    np.testing.assert_array_equal(ds.pixel_array, array.T)


def test_volume_ids_survive_with_array() -> None:
    volume = Volume(np.zeros((2, 2, 2)), np.eye(4), series_instance_uid="1.2")
    assert volume.with_array(np.ones((2, 2, 2))).series_instance_uid == "1.2"
