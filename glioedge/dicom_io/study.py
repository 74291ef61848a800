"""One call for the runtime: a folder (or datasets) → chosen series → fused volumes."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from glioedge.dicom_io.discovery import Series, group_datasets, scan_folder, single_study
from glioedge.dicom_io.fusion import fuse
from glioedge.dicom_io.modality import ModalityRules, ModalitySelection, identify_modalities, load_rules
from glioedge.dicom_io.series import load_series
from glioedge.dicom_io.volume import Volume
from glioedge.errors import InputError

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class LoadedStudy:
    """Fused volumes (all on the reference grid) and how they were chosen.

    Attributes:
        volumes: modality → volume on the reference grid.
        series: modality → the source series (its datasets are what ``write_seg`` references).
        selection: The modality decision with every series' scores.
        reference: The modality whose grid the volumes share.
        transforms: Rigid transforms applied by registration, if any.
    """

    volumes: dict[str, Volume]
    series: dict[str, Series]
    selection: ModalitySelection
    reference: str
    transforms: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable record for the job log (no patient data)."""
        return {"reference": self.reference, "selection": self.selection.to_dict(),
                "transforms": self.transforms}


def load_study(
    source: str | Path | Sequence[Dataset],
    required: Sequence[str] = ("flair", "t1ce"),
    rules: ModalityRules | str | Path | None = None,
    reference: str = "t1ce",
    *,
    optional: Sequence[str] = (),
    register: bool = False,
) -> LoadedStudy:
    """Scan, choose FLAIR/T1CE (and others), load and fuse them on the reference grid.

    Args:
        source: A folder scanned recursively, or in-memory datasets of one study.
        required: Modalities that must be present.
        rules: Modality rules, or the path of a JSON/TOML rule file.
        reference: Modality whose grid the volumes are resampled onto.
        optional: Modalities loaded when present (e.g. ``("t1", "t2")``).
        register: Rigidly register series in another frame of reference instead of failing.

    Returns:
        The fused volumes and the selection.

    Raises:
        InputError: no or several studies, a required modality missing or ambiguous, a series
            with bad geometry, or frames of reference that differ (without ``register``).
        ConfigError: an invalid rule file.
    """
    if reference not in required:
        raise InputError(f"reference {reference!r} must be one of the required modalities "
                         f"{tuple(required)}")
    if isinstance(source, (str, Path)):
        studies = scan_folder(source)
        where = str(source)
    else:
        studies = group_datasets(source)
        where = "the datasets given"
    study = single_study(studies, where)
    if isinstance(rules, (str, Path)):
        rules = load_rules(rules)
    selection = identify_modalities(study, required, optional, rules)
    volumes = {m: load_series(s) for m, s in selection.chosen.items()}
    fused = fuse(volumes, reference, register=register)
    logger.info("study %s: %s on the %s grid %s", study.study_instance_uid,
                ", ".join(f"{m}={s.series_number}" for m, s in selection.chosen.items()),
                reference, volumes[reference].shape)
    return LoadedStudy(fused.volumes, dict(selection.chosen), selection, reference,
                       fused.transforms)
