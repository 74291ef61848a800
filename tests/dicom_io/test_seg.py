"""Label map → DICOM-SEG → label map, validated by dciodvfy and read back by dcmqi."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk  # noqa: N813

from glioedge.dicom_io import load_series, read_seg, write_seg
from glioedge.dicom_io.volume import Volume
from glioedge.errors import InputError
from glioedge.synth import synthetic_series
from glioedge.synth.phantom import grid_affine, phantom_image, phantom_labels
from tests.helpers import dciodvfy_errors, tool

#: a non-axial, anisotropic reference (oblique, 1.5 × 1.2 × 4 mm) and an off-centre tumour
SHAPE, SPACING = (56, 60, 14), (1.5, 1.2, 4.0)


def _reference(storage: str, orientation: str = "oblique"):
    affine = grid_affine(SHAPE, SPACING, orientation, centre=(25.0, -10.0, 15.0))
    datasets = synthetic_series(phantom_image(SHAPE, affine, "t1ce"), affine, modality="t1ce",
                                storage=storage, series_number=7)
    random.Random(1).shuffle(datasets)
    volume = load_series(datasets)
    labels = phantom_labels(SHAPE, volume.affine)[1]
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    return datasets, volume, labels


@pytest.mark.parametrize("storage", ["mr", "enhanced"])
@pytest.mark.parametrize("kind", ["BINARY", "LABELMAP"])
@pytest.mark.parametrize("omit", [True, False])
def test_round_trip_exact(storage: str, kind: str, omit: bool, tmp_path: Path) -> None:
    datasets, volume, labels = _reference(storage)
    other = synthetic_series(phantom_image((8, 8, 4), np.eye(4), "flair"), np.eye(4),
                             series_number=3)
    seg = write_seg(labels, datasets, other, segmentation_type=kind, omit_empty_frames=omit,
                    bundle_id="bundle-abc", series_number=99, series_description="AI tumour")
    path = tmp_path / "seg.dcm"
    seg.save_as(path)
    back = read_seg(path, reference=volume)
    np.testing.assert_array_equal(back.array, labels)
    assert back.frame_of_reference_uid == volume.frame_of_reference_uid
    ds = pydicom.dcmread(path)
    assert ds.SegmentationType == kind
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.SeriesNumber == 99 and ds.SeriesDescription == "AI tumour"
    segments = [s for s in ds.SegmentSequence if s.SegmentNumber > 0]  # LABELMAP: 0 background
    assert [s.SegmentLabel for s in segments] == ["NCR", "ED", "ET"]
    codes = [s.SegmentedPropertyTypeCodeSequence[0].CodeValue for s in segments]
    assert codes == ["6574001", "79654002", "C113842"]
    assert all(s.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
               for s in segments)
    assert segments[0].AnatomicRegionSequence[0].CodeMeaning == "Brain"
    algorithm = segments[0].SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "glioedge"
    assert "bundle-abc" in str(algorithm.AlgorithmParameters)
    _assert_references_only(ds, datasets)
    assert f"other_series={other[0].SeriesInstanceUID}" in str(algorithm.AlgorithmParameters)
    # highdicom's reader accepts it and finds the same (single-series) sources
    read = hd.seg.segread(path)
    assert {series for _, series, _ in read.get_source_image_uids()} == {datasets[0].SeriesInstanceUID}
    n_frames_with_tumour = int((labels.reshape(-1, SHAPE[2]) > 0).any(0).sum())
    per_slice = 3 if kind == "BINARY" else 1
    expected = (n_frames_with_tumour * per_slice if omit and kind == "BINARY" else
                n_frames_with_tumour if omit else SHAPE[2] * per_slice)
    if not (omit and kind == "BINARY"):
        assert ds.NumberOfFrames == expected
    else:
        assert ds.NumberOfFrames <= expected
    assert dciodvfy_errors(path) == []


def _assert_references_only(ds: pydicom.Dataset, reference: list[pydicom.Dataset]) -> None:
    """The SEG references the series its frames lie on and nothing else (what OHIF needs)."""
    series = str(reference[0].SeriesInstanceUID)
    sops = {str(r.SOPInstanceUID) for r in reference}
    assert [str(s.SeriesInstanceUID) for s in ds.ReferencedSeriesSequence] == [series]
    listed = {str(i.ReferencedSOPInstanceUID)
              for i in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert listed == sops
    assert {str(i.ReferencedSOPInstanceUID) for i in ds.SourceImageSequence} == sops
    for frame in ds.PerFrameFunctionalGroupsSequence:
        for derivation in frame.get("DerivationImageSequence", []):
            assert {str(i.ReferencedSOPInstanceUID)
                    for i in derivation.SourceImageSequence} <= sops


def test_uids_are_deterministic_and_configurable() -> None:
    datasets, _, labels = _reference("mr", "axial")
    a = write_seg(labels, datasets, bundle_id="b1")
    b = write_seg(labels, list(reversed(datasets)), bundle_id="b1")
    c = write_seg(labels, datasets, bundle_id="b2")
    assert (a.SeriesInstanceUID, a.SOPInstanceUID) == (b.SeriesInstanceUID, b.SOPInstanceUID)
    assert a.SeriesInstanceUID != c.SeriesInstanceUID
    assert a.SeriesInstanceUID.startswith("2.25.") and len(a.SeriesInstanceUID) <= 64
    tracking = [s.TrackingUID for s in a.SegmentSequence]
    assert len(set(tracking)) == 3
    assert tracking == [s.TrackingUID for s in b.SegmentSequence]
    d = write_seg(labels, datasets, series_instance_uid="1.2.3.4", sop_instance_uid="1.2.3.5")
    assert (d.SeriesInstanceUID, d.SOPInstanceUID) == ("1.2.3.4", "1.2.3.5")


def test_bad_label_maps() -> None:
    datasets, _, labels = _reference("mr", "axial")
    with pytest.raises(InputError, match="differs from the reference series grid"):
        write_seg(labels[:, :, :-1], datasets)
    with pytest.raises(InputError, match=r"classes 0\.\.3"):
        write_seg(labels * 2, datasets)
    with pytest.raises(InputError, match="segmentation_type must be one of"):
        write_seg(labels, datasets, segmentation_type="FRACTIONAL")


def test_read_seg_without_reference_spans_the_frames(tmp_path: Path) -> None:
    datasets, volume, labels = _reference("mr", "sagittal")
    back = read_seg(write_seg(labels, datasets))
    # the SEG's own grid holds every tumour voxel at the same physical position
    placed = Volume(back.array, back.affine)
    from glioedge.dicom_io.fusion import resample_to

    np.testing.assert_array_equal(resample_to(placed, volume, "nearest").array, labels)


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["BINARY", "LABELMAP"])
def test_dcmqi_reads_the_same_label_map(kind: str, tmp_path: Path) -> None:
    exe = tool("segimage2itkimage")
    if exe is None:
        pytest.skip("segimage2itkimage (PyPI dcmqi) is not installed")
    datasets, volume, labels = _reference("mr")
    other = synthetic_series(phantom_image((8, 8, 4), np.eye(4), "flair"), np.eye(4),
                             series_number=3)
    path = tmp_path / "seg.dcm"
    write_seg(labels, datasets, other, segmentation_type=kind).save_as(path)
    out = tmp_path / "dcmqi"
    out.mkdir()
    run = subprocess.run([exe, "--inputDICOM", str(path), "--outputDirectory", str(out),
                          "--outputType", "nii"], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    files = sorted(out.glob("*.nii*"))
    assert files, f"dcmqi wrote nothing: {run.stdout}{run.stderr}"
    # dcmqi writes one file per segment (BINARY) or per non-overlapping group; each file's
    # segment numbers are listed in its meta JSON: map them back through the physical space
    combined = np.zeros(SHAPE, dtype=np.uint8)
    meta = __import__("json").loads((out / "meta.json").read_text())
    for file, segments in zip(files, meta["segmentAttributes"], strict=True):
        image = Volume.from_sitk(sitk.ReadImage(str(file)))
        from glioedge.dicom_io.fusion import resample_to

        on_ref = resample_to(image, volume, "nearest").array
        for attributes in segments:
            combined[on_ref == attributes["labelID"]] = int(
                {"NCR": 1, "ED": 2, "ET": 3}[attributes["SegmentLabel"]])
    np.testing.assert_array_equal(combined, labels)


def test_empty_label_map_round_trips() -> None:
    datasets, volume, labels = _reference("mr", "axial")
    seg = write_seg(np.zeros_like(labels), datasets, omit_empty_frames=True)
    assert not read_seg(seg, reference=volume).array.any()
