"""Factories for the dicom_io tests: phantom series written as DICOM, small and fast."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from glioedge.synth.dicom_writer import StudyInfo, write_synthetic_series
from glioedge.synth.phantom import grid_affine, phantom_image

#: Small stand-ins of the issue's geometries: 2-D FLAIR (fine in-plane, thick slices) and
#: 3-D T1CE (isotropic), kept small so that the suite stays fast.
FLAIR_GRID = {"shape": (48, 44, 10), "spacing": (3.6, 3.6, 12.0), "orientation": "axial"}
T1CE_GRID = {"shape": (40, 44, 36), "spacing": (4.0, 4.0, 4.0), "orientation": "sagittal"}


@pytest.fixture
def write_series(tmp_path: Path) -> Callable[..., list[Path]]:
    """Write one phantom series; returns its file paths."""

    def make(modality: str = "flair", *, shape: tuple[int, int, int] = (32, 28, 8),
             spacing: tuple[float, float, float] = (4.0, 4.0, 6.0), orientation: str = "axial",
             folder: str | None = None, series_number: int = 1, study: StudyInfo | None = None,
             storage: str = "mr", **options: Any) -> list[Path]:
        affine = grid_affine(shape, spacing, orientation)
        image = phantom_image(shape, affine, modality)
        out = tmp_path / (folder or f"s{series_number}_{modality}_{storage}")
        return write_synthetic_series(out, image, affine, modality=modality, storage=storage,
                                      series_number=series_number, study=study, **options)

    return make


@pytest.fixture
def study_folder(tmp_path: Path, write_series: Callable[..., list[Path]]) -> Path:
    """A study with a 2-D axial FLAIR (MR Image Storage) and a 3-D sagittal T1CE (Enhanced MR)."""
    write_series("flair", series_number=3, folder="study/flair", **FLAIR_GRID)
    write_series("t1ce", series_number=7, folder="study/t1ce", storage="enhanced", **T1CE_GRID)
    return tmp_path / "study"


@pytest.fixture
def labels_on() -> Callable[[tuple[int, int, int], np.ndarray], np.ndarray]:
    """The phantom's tumour labels (0..3) sampled on a grid."""
    from glioedge.synth.phantom import phantom_labels

    return lambda shape, affine: phantom_labels(shape, affine)[1]
