"""Label conventions of BraTS files and the internal class indices.

Internal classes: 0 background, 1 NCR (necrotic / non-enhancing core), 2 ED (peritumoral
edema), 3 ET (enhancing tumour). BraTS 2018–2021 files write ET as 4, BraTS 2023+ as 3.
numpy only (the runtime uses it). The vocabulary itself (classes, regions, label maps) lives in
:mod:`glioedge.vocabulary`; this module converts arrays with it.
"""

from __future__ import annotations

import numpy as np

from glioedge.errors import ConfigError, InputError
from glioedge.vocabulary import CLASS_NAMES, LABEL_MAPS, NUM_CLASSES, REGIONS, LabelConvention

__all__ = [
    "CLASS_NAMES",
    "NUM_CLASSES",
    "REGIONS",
    "LabelConvention",
    "label_mapping",
    "map_labels",
    "region_mask",
    "to_file_labels",
    "to_internal",
]

def _conv(conv: LabelConvention | str) -> LabelConvention:
    try:
        return LabelConvention(conv)
    except ValueError:
        valid = ", ".join(c.value for c in LabelConvention)
        raise ConfigError(f"unknown label convention {conv!r}; valid: {valid}") from None


def label_mapping(conv: LabelConvention | str) -> dict[int, int]:
    """File value → internal class for ``conv``.

    Raises:
        ConfigError: ``conv`` is not a known convention.
    """
    return dict(LABEL_MAPS[_conv(conv)])


def _lut(mapping: dict[int, int]) -> np.ndarray:
    lut = np.full(max(mapping) + 1, 255, dtype=np.uint8)
    for k, v in mapping.items():
        lut[k] = v
    return lut


def to_internal(
    seg: np.ndarray, conv: LabelConvention | str, *, source: str
) -> np.ndarray:
    """Convert a file's label values to internal classes 0..3 (uint8).

    Args:
        seg: integer (or integral float) label array as read from the file.
        conv: the file's label convention.
        source: the file or case the array came from (named in errors).

    Raises:
        InputError: ``seg`` holds values that ``conv`` does not define (or non-integers).
        ConfigError: ``conv`` is unknown.
    """
    c = _conv(conv)
    return map_labels(seg, label_mapping(c), source=source, what=f"the {c.value} convention")


def map_labels(
    seg: np.ndarray, mapping: dict[int, int], *, source: str, what: str = "the label mapping"
) -> np.ndarray:
    """Map file values to internal classes with an explicit ``mapping`` (uint8).

    Raises:
        InputError: ``seg`` holds values that ``mapping`` does not define.
    """
    values = np.unique(seg)
    unknown = [v for v in values.tolist() if v not in mapping]
    if unknown:
        raise InputError(
            f"{source}: label values {unknown} are not part of {what} "
            f"(expected a subset of {sorted(mapping)})"
        )
    return _lut(mapping)[np.asarray(seg).astype(np.int64)]


def to_file_labels(labels: np.ndarray, conv: LabelConvention | str) -> np.ndarray:
    """Convert internal classes 0..3 back to the file values of ``conv`` (uint8).

    Raises:
        InputError: ``labels`` holds values outside 0..3.
        ConfigError: ``conv`` is unknown.
    """
    inverse = {v: k for k, v in label_mapping(conv).items()}
    bad = [v for v in np.unique(labels).tolist() if v not in inverse]
    if bad:
        raise InputError(f"internal label values {bad} are outside 0..{NUM_CLASSES - 1}")
    return _lut(inverse)[np.asarray(labels).astype(np.int64)]


def region_mask(labels: np.ndarray, region: str) -> np.ndarray:
    """Boolean mask of an evaluation region (``"WT"``, ``"TC"`` or ``"ET"``).

    Raises:
        ConfigError: ``region`` is not one of :data:`REGIONS`.
    """
    if region not in REGIONS:
        raise ConfigError(f"unknown region {region!r}; valid: {', '.join(REGIONS)}")
    return np.isin(labels, REGIONS[region])
