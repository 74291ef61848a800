from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from glioedge.data.brats import discover_cases, load_case
from glioedge.data.geometry import make_affine
from glioedge.data.labels import LabelConvention
from glioedge.data.modalities import DEFAULT_STUDENT_MODALITIES, TEACHER_MODALITIES, Modality
from glioedge.errors import InputError
from tests.data.conftest import AFFINE, small_seg, small_volume, write_nifti

EXPECTED = small_seg(et_value=3)  # internal classes: ET = 3


@pytest.mark.parametrize("ext", [".nii.gz", ".nii"])
def test_brats2021_discover_and_load(brats2021_root: Callable[..., Path], ext: str) -> None:
    cases = discover_cases(brats2021_root(2, ext))
    assert [c.case_id for c in cases] == ["BraTS2021_00000", "BraTS2021_00001"]
    assert cases[0].convention is LabelConvention.BRATS2021
    case = load_case(cases[0])
    assert list(case.images) == list(TEACHER_MODALITIES)
    assert case.images[Modality.FLAIR].dtype == np.float32
    assert np.array_equal(case.images[Modality.FLAIR], small_volume(2))  # (i, j, k) order
    assert np.array_equal(case.label, EXPECTED)
    assert np.allclose(case.affine, AFFINE)
    assert case.spacing == pytest.approx((1.0, 1.2, 2.0))


def test_brats2023_layout(brats2023_root: Path) -> None:
    (files,) = discover_cases(brats2023_root)
    assert files.convention is LabelConvention.BRATS2023
    assert files.images[Modality.FLAIR].name.endswith("-t2f.nii.gz")
    case = load_case(files, DEFAULT_STUDENT_MODALITIES)
    assert list(case.images) == list(DEFAULT_STUDENT_MODALITIES)
    assert np.array_equal(case.images[Modality.T1CE], small_volume(3))
    assert np.array_equal(case.label, EXPECTED)


def test_nnunet_layout_region_based_labels(nnunet_root: Path) -> None:
    (files,) = discover_cases(nnunet_root)
    assert files.case_id == "BraTS2021_00001"
    assert files.images[Modality.T1CE].name == "BraTS2021_00001_0001.nii.gz"
    assert files.images[Modality.FLAIR].name == "BraTS2021_00001_0003.nii.gz"
    case = load_case(files)
    assert np.array_equal(case.label, EXPECTED)


def test_single_case_folder(brats2021_root: Callable[..., Path]) -> None:
    root = brats2021_root(1)
    (files,) = discover_cases(root / "BraTS2021_00000")
    assert files.case_id == "BraTS2021_00000"


def test_missing_file_names_case_and_file(brats2021_root: Callable[..., Path]) -> None:
    root = brats2021_root(1)
    (root / "BraTS2021_00000" / "BraTS2021_00000_t2.nii.gz").unlink()
    with pytest.raises(InputError, match=r"BraTS2021_00000.*BraTS2021_00000_t2\.nii\.gz"):
        discover_cases(root)
    # the student does not need T2
    assert discover_cases(root, DEFAULT_STUDENT_MODALITIES)


def test_missing_seg(brats2021_root: Callable[..., Path]) -> None:
    root = brats2021_root(1)
    (root / "BraTS2021_00000" / "BraTS2021_00000_seg.nii.gz").unlink()
    with pytest.raises(InputError, match=r"BraTS2021_00000_seg\.nii\.gz"):
        discover_cases(root)
    (files,) = discover_cases(root, require_seg=False)
    assert files.seg is None
    assert load_case(files).label is None


def test_shape_mismatch(brats2021_root: Callable[..., Path]) -> None:
    root = brats2021_root(1)
    bad = root / "BraTS2021_00000" / "BraTS2021_00000_flair.nii.gz"
    write_nifti(bad, small_volume(0, shape=(12, 10, 9)), AFFINE)
    with pytest.raises(InputError, match=r"BraTS2021_00000.*_flair\.nii\.gz.*shape"):
        load_case(discover_cases(root)[0])


def test_affine_mismatch(brats2021_root: Callable[..., Path]) -> None:
    root = brats2021_root(1)
    bad = root / "BraTS2021_00000" / "BraTS2021_00000_seg.nii.gz"
    write_nifti(bad, small_seg(), make_affine((1.0, 1.2, 2.0), (-5.0, 3.0, 10.01)))
    with pytest.raises(InputError, match=r"BraTS2021_00000.*_seg\.nii\.gz.*grid"):
        load_case(discover_cases(root)[0])


def test_affine_within_tolerance_is_accepted(brats2021_root: Callable[..., Path]) -> None:
    root = brats2021_root(1)
    seg = root / "BraTS2021_00000" / "BraTS2021_00000_seg.nii.gz"
    write_nifti(seg, small_seg(), make_affine((1.0, 1.2, 2.0), (-5.0, 3.0, 10.0004)))
    assert load_case(discover_cases(root)[0]).label is not None


def test_unknown_label_value_names_case_and_file(brats2021_root: Callable[..., Path]) -> None:
    root = brats2021_root(1)
    seg = small_seg()
    seg[0, 0, 0] = 3  # 3 is not a BraTS 2021 value
    write_nifti(root / "BraTS2021_00000" / "BraTS2021_00000_seg.nii.gz", seg, AFFINE)
    with pytest.raises(InputError, match=r"BraTS2021_00000.*_seg\.nii\.gz.*\[3\]"):
        load_case(discover_cases(root)[0])


def test_empty_root(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no case found"):
        discover_cases(tmp_path)


def test_nnunet_named_labels_and_missing_channel(nnunet_root: Path) -> None:


    meta = json.loads((nnunet_root / "dataset.json").read_text())
    meta["labels"] = {"background": 0, "edema": 1, "non-enhancing tumor": 2,
                      "enhancing tumour": 3}
    (nnunet_root / "dataset.json").write_text(json.dumps(meta))
    (files,) = discover_cases(nnunet_root)
    assert files.mapping() == {0: 0, 1: 2, 2: 1, 3: 3}
    meta["channel_names"] = {"0": "T1", "1": "T1ce", "2": "ADC", "3": "Flair"}
    (nnunet_root / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"dataset\.json.*no channel for t2"):
        discover_cases(nnunet_root)
    (nnunet_root / "imagesTr" / "BraTS2021_00001_0001.nii.gz").unlink()
    with pytest.raises(InputError, match=r"BraTS2021_00001.*BraTS2021_00001_0001\.nii\.gz"):
        discover_cases(nnunet_root, DEFAULT_STUDENT_MODALITIES)
