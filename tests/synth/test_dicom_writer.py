"""The synthetic writer's series are valid MR objects with realistic sequence headers."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from glioedge.synth.dicom_writer import write_synthetic_series
from glioedge.synth.phantom import grid_affine, phantom_image
from tests.helpers import dciodvfy_errors


@pytest.mark.parametrize("storage", ["mr", "enhanced"])
@pytest.mark.parametrize("modality", ["flair", "t1ce", "t1", "t2"])
def test_dciodvfy_accepts(tmp_path: Path, storage: str, modality: str) -> None:
    shape, spacing = (32, 28, 8), (4.0, 4.0, 6.0)
    affine = grid_affine(shape, spacing, "oblique")
    paths = write_synthetic_series(tmp_path / "series", phantom_image(shape, affine, modality), affine,
                                   modality=modality, storage=storage, series_number=1)
    assert dciodvfy_errors(paths[0]) == []
    ds = pydicom.dcmread(paths[0])
    assert ds.Manufacturer and ds.MagneticFieldStrength == 3.0
    assert ds.PatientName == "SYNTHETIC^PHANTOM"
    if modality == "flair" and storage == "mr":
        assert ds.ScanningSequence == ["SE", "IR"] and float(ds.InversionTime) == 2500
    if modality == "t1ce":
        assert ds.ContrastBolusAgent
    assert paths[0].name == f"{ds.SOPInstanceUID}.dcm"
