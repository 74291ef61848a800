"""Factories for glioedge.data tests: small NIfTI files and small synthetic cases."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

from glioedge.data.brats import Case
from glioedge.data.geometry import make_affine, sitk_from_array
from glioedge.synth.cohort import SyntheticConfig, make_case

SMALL = SyntheticConfig(shape=(40, 48, 32), spacing=(4.0, 4.0, 4.0), n_tumours=1)


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    """Write ``array[i, j, k]`` with an LPS affine as NIfTI (SimpleITK)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk_from_array(array, affine), str(path))
    return path


def small_volume(seed: int = 0, shape: tuple[int, int, int] = (12, 10, 8)) -> np.ndarray:
    """A float32 volume with a nonzero block (a 'brain') and zeros around it."""
    rng = np.random.default_rng(seed)
    vol = np.zeros(shape, dtype=np.float32)
    vol[2:-2, 2:-2, 1:-1] = rng.uniform(100, 200, size=(shape[0] - 4, shape[1] - 4, shape[2] - 2))
    return vol


def small_seg(shape: tuple[int, int, int] = (12, 10, 8), et_value: int = 4) -> np.ndarray:
    seg = np.zeros(shape, dtype=np.uint8)
    seg[4:8, 4:7, 3:5] = 2
    seg[5:7, 5:6, 3:5] = 1
    seg[4, 4, 3] = et_value
    return seg


AFFINE = make_affine((1.0, 1.2, 2.0), (-5.0, 3.0, 10.0))


@pytest.fixture
def brats2021_root(tmp_path: Path) -> Callable[..., Path]:
    """Factory: a BraTS 2018–2021 dataset folder with ``n`` small cases."""

    def make(n: int = 2, ext: str = ".nii.gz") -> Path:
        root = tmp_path / "brats21"
        for c in range(n):
            cid = f"BraTS2021_{c:05d}"
            for i, mod in enumerate(("t1", "t2", "flair", "t1ce")):
                write_nifti(root / cid / f"{cid}_{mod}{ext}", small_volume(c * 4 + i), AFFINE)
            write_nifti(root / cid / f"{cid}_seg{ext}", small_seg(), AFFINE)
        return root

    return make


@pytest.fixture
def brats2023_root(tmp_path: Path) -> Path:
    """A BraTS 2023 dataset folder with one case (ET written as 3)."""
    root = tmp_path / "brats23"
    cid = "BraTS-GLI-00000-000"
    for i, suffix in enumerate(("t1n", "t2w", "t2f", "t1c")):
        write_nifti(root / cid / f"{cid}-{suffix}.nii.gz", small_volume(i), AFFINE)
    write_nifti(root / cid / f"{cid}-seg.nii.gz", small_seg(et_value=3), AFFINE)
    return root


@pytest.fixture
def nnunet_root(tmp_path: Path) -> Path:
    """An nnU-Net raw dataset in the Dataset137_BraTS2021 convention (region-based labels:
    file 1 = ED, 2 = NCR, 3 = ET)."""
    root = tmp_path / "Dataset137_BraTS2021"
    meta = {
        "channel_names": {"0": "T1", "1": "T1ce", "2": "T2", "3": "Flair"},
        "labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3],
                   "enhancing tumor": 3},
        "numTraining": 1,
        "file_ending": ".nii.gz",
    }
    root.mkdir(parents=True)
    (root / "dataset.json").write_text(json.dumps(meta))
    for ch in range(4):
        write_nifti(root / "imagesTr" / f"BraTS2021_00001_{ch:04d}.nii.gz", small_volume(ch),
                    AFFINE)
    seg = small_seg(et_value=3)
    nn = np.zeros_like(seg)
    nn[seg == 2], nn[seg == 1], nn[seg == 3] = 1, 2, 3
    write_nifti(root / "labelsTr" / "BraTS2021_00001.nii.gz", nn, AFFINE)
    return root


@pytest.fixture(scope="session")
def small_case() -> Case:
    """A small synthetic case (4 mm grid) shared by the tests."""
    return make_case(3, SMALL)
