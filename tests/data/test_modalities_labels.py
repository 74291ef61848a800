from __future__ import annotations

import numpy as np
import pytest

from glioedge.data.labels import (
    REGIONS,
    LabelConvention,
    label_mapping,
    region_mask,
    to_file_labels,
    to_internal,
)
from glioedge.data.modalities import (
    DEFAULT_STUDENT_MODALITIES,
    TEACHER_MODALITIES,
    Modality,
    parse_modalities,
)
from glioedge.errors import ConfigError, InputError


def test_parse_modalities_accepts_strings_and_enums() -> None:
    assert parse_modalities("flair, T1CE") == DEFAULT_STUDENT_MODALITIES
    assert parse_modalities(["t1", Modality.T2, "flair", "t1ce"]) == TEACHER_MODALITIES


def test_parse_modalities_unknown_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match=r"'t3'.*t1, t2, flair, t1ce"):
        parse_modalities("flair,t3")


def test_parse_modalities_rejects_duplicates_and_empty() -> None:
    with pytest.raises(ConfigError, match="more than once: flair"):
        parse_modalities("flair,t1ce,flair")
    with pytest.raises(ConfigError):
        parse_modalities("")


@pytest.mark.parametrize(
    ("conv", "et"), [(LabelConvention.BRATS2021, 4), (LabelConvention.BRATS2023, 3)]
)
def test_label_round_trip(conv: LabelConvention, et: int) -> None:
    file_labels = np.array([[[0, 1], [2, et]]], dtype=np.uint8)
    internal = to_internal(file_labels, conv, source="x.nii.gz")
    assert internal.dtype == np.uint8
    assert internal.tolist() == [[[0, 1], [2, 3]]]
    assert np.array_equal(to_file_labels(internal, conv), file_labels)
    assert label_mapping(conv)[et] == 3


def test_unknown_label_names_file_and_values() -> None:
    with pytest.raises(InputError, match=r"case_7_seg\.nii\.gz.*\[3\]"):
        to_internal(np.array([0, 1, 3]), "brats2021", source="case_7_seg.nii.gz")


def test_regions() -> None:
    labels = np.array([0, 1, 2, 3])
    assert region_mask(labels, "WT").tolist() == [False, True, True, True]
    assert region_mask(labels, "TC").tolist() == [False, True, False, True]
    assert region_mask(labels, "ET").tolist() == [False, False, False, True]
    assert set(REGIONS) == {"WT", "TC", "ET"}
    with pytest.raises(ConfigError):
        region_mask(labels, "XX")
