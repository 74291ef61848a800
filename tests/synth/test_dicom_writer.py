"""The synthetic writer's series are valid MR objects with realistic sequence headers."""

from __future__ import annotations

import pydicom
import pytest

from tests.helpers import dciodvfy_errors


@pytest.mark.parametrize("storage", ["mr", "enhanced"])
@pytest.mark.parametrize("modality", ["flair", "t1ce", "t1", "t2"])
def test_dciodvfy_accepts(write_series, storage: str, modality: str) -> None:
    paths = write_series(modality, storage=storage, orientation="oblique")
    assert dciodvfy_errors(paths[0]) == []
    ds = pydicom.dcmread(paths[0])
    assert ds.Manufacturer and ds.MagneticFieldStrength == 3.0
    assert ds.PatientName == "SYNTHETIC^PHANTOM"
    if modality == "flair" and storage == "mr":
        assert ds.ScanningSequence == ["SE", "IR"] and float(ds.InversionTime) == 2500
    if modality == "t1ce":
        assert ds.ContrastBolusAgent
    assert paths[0].name == f"{ds.SOPInstanceUID}.dcm"
