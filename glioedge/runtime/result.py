"""The result of one segmentation: label map, SEG, volumes, timings; the report and its files.

:meth:`Result.write` puts ``seg.dcm``, ``report.json`` and, when configured, ``qa.png``,
``sr.dcm``, ``brain_mask.nii.gz`` and ``brain_seg.dcm`` into a folder, each through a temporary
file in that folder and :func:`os.replace`, so a reader (or a crash) never sees half a file, and
a re-run replaces the files with objects of the same UIDs. The file names
are fixed; callers build the folder name from sanitised UIDs
(:func:`glioedge.runtime.daemon.names.safe_uid`). Nothing here holds or writes patient names,
IDs or birth dates. A :class:`Result` is built once, complete, by the :class:`Segmenter`, and is
immutable afterwards (a frozen dataclass).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from glioedge import __version__
from glioedge.dicom_io import Volume
from glioedge.fileio import atomic_write

__all__ = ["FILES", "Result"]

#: Output file names inside the result folder.
FILES = {"seg": "seg.dcm", "report": "report.json", "qa_png": "qa.png", "sr": "sr.dcm",
         "brain_mask": "brain_mask.nii.gz", "brain_seg": "brain_seg.dcm"}


def _dataset_bytes(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _nifti_bytes(volume: Volume) -> bytes:
    """``volume`` as gzipped NIfTI bytes (SimpleITK writes to a path: a private temp folder)."""
    with tempfile.TemporaryDirectory(prefix="glioedge-nii-") as tmp:
        return volume.to_nifti(Path(tmp) / "mask.nii.gz").read_bytes()


@dataclass(frozen=True)
class Result:
    """One segmented study (or set of volumes), complete and immutable.

    Attributes:
        label_map: internal classes 0..3 on the reference grid, with the reference's UIDs.
        seg: the DICOM-SEG, or ``None`` without a DICOM source.
        volumes_ml: ET, TC, WT, NCR and ED in millilitres.
        series_used: modality → SeriesInstanceUID (empty strings without DICOM).
        timings: seconds per stage (load, brain_mask, preprocess, inference, resample,
            postprocess, seg_write, total).
        backend: the back-end that ran (e.g. ``onnxruntime-cpu``).
        bundle_id: the model bundle's id.
        brain_mask_mode: ``skull-stripped`` or ``command``.
        study_instance_uid: the source study (``""`` without DICOM).
        postprocess: what the post-processing did.
        options: the Segmenter configuration (``SegmenterConfig.to_dict()``).
        windows: network windows evaluated.
        background: image shown under the overlay of the QA PNG (reference grid).
        sources: datasets of the series used (evidence of the SR).
        intake: what DICOM intake used and left out and why: ignored files by reason, series
            not used, duplicate instances, repeated acquisitions (``LoadedStudy.intake``; no paths).
        registration: modality → the rigid transform that aligned it to the reference (only
            for series registered because their frame of reference differed).
        brain_mask: the brain (before the tumour-safe margin) on the reference grid.
        brain_seg: that brain as a SEG of its own (``save_brain_mask`` ``seg``/``both``).
        brain: the report's ``brain`` entry: ``volume_ml``, ``mode``, ``from_modalities`` and
            ``from_series`` (the series the mask was computed from), ``grid_series``.
        quality: the quality verdict (:meth:`glioedge.runtime.quality.Quality.to_dict`):
            ``verdict`` (ok | review | reject), ``finding``, ``reasons``, ``scores``.
    """

    label_map: Volume
    seg: Dataset | None
    volumes_ml: Mapping[str, float]
    series_used: Mapping[str, str]
    timings: Mapping[str, float]
    backend: str
    bundle_id: str
    brain_mask_mode: str
    study_instance_uid: str = ""
    postprocess: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    windows: int = 0
    background: Volume | None = field(default=None, repr=False)
    sources: tuple[Dataset, ...] = field(default=(), repr=False)
    intake: Mapping[str, Any] = field(default_factory=dict)
    registration: Mapping[str, Any] = field(default_factory=dict)
    brain_mask: Volume | None = field(default=None, repr=False)
    brain_seg: Dataset | None = field(default=None, repr=False)
    brain: Mapping[str, Any] = field(default_factory=dict)
    quality: Mapping[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """``ok``, ``review`` or ``reject`` (``ok`` for a result built without a verdict)."""
        return str(self.quality.get("verdict", "ok"))

    def report(self) -> dict[str, Any]:
        """The JSON-safe report: volumes, series used, model, timings (no patient data)."""
        seg = None
        if self.seg is not None:
            seg = {"series_instance_uid": str(self.seg.SeriesInstanceUID),
                   "sop_instance_uid": str(self.seg.SOPInstanceUID),
                   "segmentation_type": str(self.seg.SegmentationType),
                   "frames": int(self.seg.get("NumberOfFrames", 0))}
        return {
            "glioedge_version": __version__,
            "study_instance_uid": self.study_instance_uid,
            "series_used": dict(self.series_used),
            "bundle_id": self.bundle_id,
            "backend": self.backend,
            "brain_mask_mode": self.brain_mask_mode,
            "brain": dict(self.brain),
            "volumes_ml": {k: round(float(v), 4) for k, v in self.volumes_ml.items()},
            "postprocess": dict(self.postprocess),
            "grid": {"shape": list(self.label_map.shape),
                     "spacing_mm": [round(float(s), 6) for s in self.label_map.spacing]},
            "windows": self.windows,
            "seg": seg,
            "timings_s": {k: round(float(v), 4) for k, v in self.timings.items()},
            "config": dict(self.options),
            "intake": dict(self.intake),
            "registration": dict(self.registration),
            "quality": dict(self.quality),
        }

    def write(self, out_dir: Path) -> dict[str, Path]:
        """Write the SEG, the report and the optional QA PNG / SR / brain mask atomically into
        ``out_dir``.

        Returns:
            kind (``seg``, ``report``, ``qa_png``, ``sr``, ``brain_mask``, ``brain_seg``) → path,
            for the files written.

        Raises:
            OSError: ``out_dir`` is not writable or the disk is full.
        """
        out_dir = Path(out_dir)
        written: dict[str, Path] = {}
        if self.seg is not None:
            data = _dataset_bytes(self.seg)
            written["seg"] = atomic_write(out_dir / FILES["seg"], lambda f: f.write(data))
        if self.options.get("qa_png"):
            from glioedge.runtime.qa_png import qa_png_bytes

            png = qa_png_bytes(self.label_map, self.background, volumes_ml=self.volumes_ml,
                               bundle_id=self.bundle_id, brain=self.brain_mask,
                               brain_ml=self.brain.get("volume_ml"), quality=self.quality)
            written["qa_png"] = atomic_write(out_dir / FILES["qa_png"], lambda f: f.write(png))
        if self.options.get("sr") and self.seg is not None:
            from glioedge.runtime.sr import volume_report_sr

            sr = _dataset_bytes(volume_report_sr(self.seg, self.sources, self.volumes_ml, self.bundle_id,
                                                 quality=self.quality))
            written["sr"] = atomic_write(out_dir / FILES["sr"], lambda f: f.write(sr))
        save = str(self.options.get("save_brain_mask") or "")
        if save in ("nifti", "both") and self.brain_mask is not None:
            nifti = _nifti_bytes(self.brain_mask.with_array(
                np.asarray(self.brain_mask.array).astype(np.uint8)))
            written["brain_mask"] = atomic_write(out_dir / FILES["brain_mask"], lambda f: f.write(nifti))
        if self.brain_seg is not None:
            brain_seg = _dataset_bytes(self.brain_seg)
            written["brain_seg"] = atomic_write(out_dir / FILES["brain_seg"],
                                                lambda f: f.write(brain_seg))
        report = self.report()
        report["files"] = {k: p.name for k, p in written.items()}
        text = (json.dumps(report, indent=2, sort_keys=True) + "\n").encode()
        written["report"] = atomic_write(out_dir / FILES["report"], lambda f: f.write(text))
        return written
