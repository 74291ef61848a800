"""The Python API: ``Segmenter.from_bundle(path).segment_study(folder) → Result``.

A study goes: DICOM series chosen and fused on the reference grid (:func:`glioedge.dicom_io.load_study`)
→ brain mask (:mod:`.brain_mask`) → :func:`.inference.run_inference` (the shared preprocessing,
sliding window, probabilities back on the reference grid, argmax) → small-ET post-processing →
volumes → DICOM-SEG whose UIDs are derived from the source instances, the bundle id, the back-end
and the configuration (so a re-run gives the same object). Torch-free unless the torch back-end is asked for.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from glioedge.bundle import Bundle
from glioedge.bundle_signing import SignaturePolicy
from glioedge.dicom_io import (
    LoadedStudy,
    ModalityRules,
    Volume,
    deterministic_uid,
    load_study,
    resample_to,
    write_seg,
)
from glioedge.dicom_io.brain_seg import write_brain_seg
from glioedge.errors import InputError
from glioedge.progress import current_progress
from glioedge.runtime.backends import Backend, select_backend
from glioedge.runtime.brain_mask import BrainMaskMode, MaskOutcome, compute_brain_mask
from glioedge.runtime.inference import InferenceOutput, preprocess_params, run_inference
from glioedge.runtime.postprocess import apply_postprocess, tumour_volumes_ml
from glioedge.runtime.quality import OK, Quality, assess
from glioedge.runtime.result import Result
from glioedge.runtime.segmenter_config import SegmenterConfig
from glioedge.runtime.skullstrip import BrainMaskModel, SkullStripConfig, brain_volume_ml, grow_for_tumour

logger = logging.getLogger(__name__)

__all__ = ["Segmenter", "SegmenterConfig"]


@dataclass(frozen=True)
class _Segmented:
    """What the shared path computes; the entry points add where the images came from and build
    the :class:`Result` from it, once."""

    labels: Volume
    volumes_ml: dict[str, float]
    timings: dict[str, float]
    brain_mask_mode: str
    postprocess: dict[str, Any]
    options: dict[str, Any]
    windows: int
    background: Volume
    brain: Volume
    brain_report: dict[str, Any]
    quality: Quality


class Segmenter:
    """Segment brain tumours with a model bundle on one back-end.

    Attributes:
        bundle: the model bundle. backend: the back-end. config: the configuration.
    """

    def __init__(self, bundle: Bundle, backend: Backend, config: SegmenterConfig | None = None,
                 device: str | None = None) -> None:
        """Use an opened bundle and back-end (see :meth:`from_bundle`); ``device`` is where the
        brain-mask model runs (``None``: the GPU when ONNX Runtime has one).

        Raises:
            ModelError: the manifest's preprocessing is inconsistent.
        """
        self.bundle = bundle
        self.backend = backend
        self.config = config or SegmenterConfig()
        self._params = preprocess_params(bundle.manifest)
        mods = bundle.manifest.modalities
        self.reference = "t1ce" if "t1ce" in mods else mods[0]
        self.brain_mask_model: BrainMaskModel | None = None
        if self.config.brain_mask == BrainMaskMode.AUTO.value:
            self.brain_mask_model = BrainMaskModel.from_bundle(bundle, device=device)
        self._skullstrip = SkullStripConfig(margin_mm=self.config.brain_mask_margin_mm,
                                            mirror=self.config.brain_mask_mirror,
                                            series=self.config.brain_mask_series,
                                            head_box_mm=self.config.brain_mask_head_box_mm)

    @classmethod
    def from_bundle(
        cls, path: Path | str, backend: str = "auto", device: str | None = None,
        config: SegmenterConfig | None = None, *, checkpoint: Path | None = None,
        cache_dir: Path | None = None,
    ) -> Segmenter:
        """Load and verify a bundle and open a back-end (``auto``: TensorRT > ORT-CUDA > ORT-CPU).

        Raises:
            ModelError: the bundle is missing or malformed.
            VerificationError: the bundle is altered, or its signature does not satisfy
                ``config.require_signature`` / ``config.trusted_keys``.
            BackendError: the back-end is unavailable (the message says what to install).
            ConfigError: unknown back-end name.
        """
        cfg = config or SegmenterConfig()
        policy = SignaturePolicy(cfg.require_signature, cfg.trusted_keys)
        bundle = Bundle.load(path, verify=True, policy=policy)
        be = select_backend(bundle, backend, device, checkpoint=checkpoint, cache_dir=cache_dir,
                            batch_size=cfg.batch_size)
        return cls(bundle, be, cfg, device=device)

    @classmethod
    def from_checkpoint(
        cls, checkpoint: Path | str, bundle: Path | str, device: str | None = None,
        config: SegmenterConfig | None = None,
    ) -> Segmenter:
        """The PyTorch reference: the bundle's manifest with its training checkpoint's network.

        Raises:
            ModelError: bundle or checkpoint unusable, or the checkpoint is not the bundle's.
            BackendError: torch is not installed.
        """
        return cls.from_bundle(bundle, "torch", device, config, checkpoint=Path(checkpoint))

    @property
    def bundle_id(self) -> str:
        """The model bundle's id."""
        return self.bundle.manifest.bundle_id

    def close(self) -> None:
        """Release the back-end."""
        self.backend.close()

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- entry points ---------------------------------------------------------------------
    def segment_study(
        self, source: Path | str | Sequence[Dataset], *, rules: ModalityRules | Path | str | None = None,
    ) -> Result:
        """Segment a DICOM study (a folder, or the datasets of one study).

        Raises:
            InputError: no/several studies, a required series missing or ambiguous, bad geometry,
                an empty image or brain mask.
            BackendError: the back-end or the brain-mask command fails.
            ConfigError: an invalid rule file.
        """
        t0 = time.perf_counter()
        current_progress().stage("reading")
        study: LoadedStudy = load_study(source, required=tuple(self.bundle.manifest.modalities),
                                        rules=rules, reference=self.reference,
                                        register=self.config.register)
        t_load = time.perf_counter() - t0
        core = self._segment(study.volumes, study.reference)
        t1 = time.perf_counter()
        current_progress().stage("writing SEG")
        reference = list(study.series[study.reference].datasets)
        others = [ds for m, s in study.series.items() if m != study.reference for ds in s.datasets]
        # The identity is what the result depends on: the source instances used *and their
        # content* (headers and the pixels read, so a corrected resend under the same UIDs gets a
        # new SEG instead of a PACS answering "duplicate" and keeping the stale one), the bundle,
        # the back-end (an FP16 TensorRT result may differ in a few voxels from an FP32 ORT one)
        # and the options that change the content. A re-run on the same inputs (after a crash)
        # gives the same UIDs, so a PACS stores the object once.
        series_uid = deterministic_uid("seg", source_identity([*reference, *others], study.volumes),
                                       self.bundle_id,
                                       self.backend.name,
                                       json.dumps(self.config.uid_dict(), sort_keys=True))
        cfg = self.config
        seg = write_seg(
            core.labels.array, reference, others, segmentation_type=cfg.segmentation_type,
            omit_empty_frames=cfg.omit_empty_frames, series_number=cfg.series_number,
            series_description=_marked(cfg.series_description, study.intake), bundle_id=self.bundle_id,
            series_instance_uid=series_uid, sop_instance_uid=deterministic_uid(series_uid, "instance"),
        )
        # The SEG references only the reference series (what OHIF needs); the inputs are named here
        # (their series UIDs are in other_series), referenced by the SR and listed in report.json.
        recorded = {"brain_mask": core.brain_mask_mode, "reference": study.reference,
                    "inputs": "+".join(sorted(study.series))}
        if study.transforms:  # rigidly registered series: say so in the SEG itself
            recorded["registered"] = "+".join(sorted(study.transforms))
        recorded["quality"] = core.quality.verdict
        _record_algorithm_parameters(seg, recorded)
        brain_seg = None
        if cfg.save_brain_mask in ("seg", "both"):
            brain_uid = deterministic_uid(series_uid, "brain-mask")
            brain_seg = write_brain_seg(
                core.brain.array, reference, series_instance_uid=brain_uid,
                sop_instance_uid=deterministic_uid(brain_uid, "instance"), bundle_id=self.bundle_id,
                series_number=cfg.series_number + 1,
                parameters={"brain_mask": core.brain_mask_mode,
                            "series": "+".join(core.brain_report["from_modalities"])})
        _mark_verdict(seg, core.quality)
        t_seg = time.perf_counter() - t1
        result = self._result(
            core, seg=seg, brain_seg=brain_seg,
            series_used={m: s.series_instance_uid for m, s in study.series.items()},
            study_instance_uid=next(iter(study.series.values())).study_instance_uid,
            sources=(*reference, *others), intake=study.intake,
            registration=study.transforms,
            timings={"load": t_load, "seg_write": t_seg, "total": time.perf_counter() - t0})
        logger.info("study %s: SEG %s, WT %.2f ml, %.1f s on %s", result.study_instance_uid,
                    result.seg.SOPInstanceUID, result.volumes_ml["WT"], result.timings["total"],
                    self.backend.name)
        return result

    def segment_volumes(self, volumes: Mapping[str, Volume]) -> Result:
        """Segment volumes given directly (non-DICOM callers); no SEG is made.

        The volumes are resampled onto the reference modality's grid when their grids differ.

        Raises:
            InputError: a required modality is missing or an image/brain mask is empty.
            BackendError: the back-end or the brain-mask command fails.
        """
        t0 = time.perf_counter()
        named = {str(getattr(k, "value", k)): v for k, v in volumes.items()}
        missing = [m for m in self.bundle.manifest.modalities if m not in named]
        if missing:
            raise InputError(f"segment_volumes: missing modalities {missing}; have {sorted(named)}")
        ref = named[self.reference]
        fused = {}
        for m in self.bundle.manifest.modalities:
            vol = named[m]
            if not vol.same_grid(ref):
                vol = resample_to(vol, ref)
            fused[m] = vol
        t_load = time.perf_counter() - t0
        core = self._segment(fused, self.reference)
        return self._result(
            core, seg=None, series_used={m: v.series_instance_uid for m, v in fused.items()},
            study_instance_uid=ref.study_instance_uid, sources=(),
            timings={"load": t_load, "seg_write": 0.0, "total": time.perf_counter() - t0})

    # -- the shared path ------------------------------------------------------------------
    def _result(self, core: _Segmented, *, seg: Dataset | None, series_used: dict[str, str],
                study_instance_uid: str, sources: tuple[Dataset, ...],
                timings: dict[str, float], intake: Mapping[str, Any] | None = None,
                registration: Mapping[str, Any] | None = None,
                brain_seg: Dataset | None = None) -> Result:
        """The one place a :class:`Result` is built, complete."""
        brain = {**core.brain_report,
                 "from_series": {m: series_used.get(m, "") for m in core.brain_report["from_modalities"]},
                 "grid_series": series_used.get(self.reference, "")}
        return Result(
            brain_mask=core.brain, brain_seg=brain_seg, brain=brain,
            label_map=core.labels, seg=seg, volumes_ml=core.volumes_ml, series_used=series_used,
            timings={**core.timings, **timings}, backend=self.backend.name, bundle_id=self.bundle_id,
            brain_mask_mode=core.brain_mask_mode, study_instance_uid=study_instance_uid,
            postprocess=core.postprocess, options=core.options, windows=core.windows,
            background=core.background, sources=sources, intake=dict(intake or {}),
            registration=dict(registration or {}), quality=core.quality.to_dict(),
        )

    def _segment(self, volumes: Mapping[str, Volume], reference: str) -> _Segmented:
        cfg = self.config
        m = self.bundle.manifest
        ref = volumes[reference]
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        current_progress().stage("brain extraction")
        outcome = compute_brain_mask(volumes, cfg.brain_mask, reference, command=cfg.brain_mask_command,
                                     model=self.brain_mask_model, skullstrip=self._skullstrip)
        timings["brain_mask"] = time.perf_counter() - t0
        images = {k: np.asarray(v.array) for k, v in volumes.items() if k in m.modalities}
        current_progress().stage("segmentation")
        out = run_inference(images, ref.affine, m, self.backend, brain_mask=outcome.mask,
                            step_size=cfg.step_size, batch_size=cfg.batch_size, mirror=cfg.mirror)
        out = self._regrow(outcome, out, images, ref)
        timings.update(out.timings)
        t0 = time.perf_counter()
        current_progress().stage("post-processing")
        labels, info = apply_postprocess(out.labels, ref.spacing, m.postprocess_params(),
                                         self._params.target_spacing, enabled=cfg.postprocess,
                                         brain_mask=outcome.mask)
        volumes_ml = tumour_volumes_ml(labels, ref.spacing)
        timings["postprocess"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        quality = assess(labels=labels, brain_mask=outcome.mask, spacing=ref.spacing,
                         profiles=out.profiles, entropy=out.entropy, mirror=cfg.mirror,
                         block=m.quality, images=images, disagreement=out.disagreement,
                         contrast=out.contrast, outside_brain_fraction=info.outside_brain_fraction)
        timings["quality"] = time.perf_counter() - t0 + timings.pop("quality_signals", 0.0)
        if quality.verdict != OK:
            logger.warning("quality %s", quality.summary())
        background_key = "flair" if "flair" in volumes else reference
        brain, brain_report = _brain_summary(outcome, volumes, reference, ref)
        return _Segmented(
            brain=brain, brain_report=brain_report,
            labels=ref.with_array(labels), volumes_ml=volumes_ml, timings=timings,
            brain_mask_mode=outcome.mode, postprocess=info.to_dict(),
            options={**cfg.to_dict(), "brain_extraction": outcome.report},
            windows=out.windows, background=volumes[background_key], quality=quality,
        )

    def _regrow(self, outcome: MaskOutcome, out: InferenceOutput, images: Mapping[str, np.ndarray],
                ref: Volume) -> InferenceOutput:
        """Tumour safety: a predicted tumour component touching the extracted mask's border may
        continue outside it; grow the mask around it and segment again (``auto`` mode only)."""
        if outcome.extraction is None or self.config.brain_mask_regrow_mm <= 0:
            return out
        grown, n = grow_for_tumour(outcome.mask, out.labels, ref.spacing, self.config.brain_mask_regrow_mm)
        outcome.report["regrown_components"] = n
        if not n:
            return out
        logger.warning("brain mask: %d tumour component(s) touch the mask border; segmenting again "
                       "on a mask grown by %.0f mm", n, self.config.brain_mask_regrow_mm)
        cfg = self.config
        again = run_inference(images, ref.affine, self.bundle.manifest, self.backend, brain_mask=grown,
                              step_size=cfg.step_size, batch_size=cfg.batch_size, mirror=cfg.mirror)
        for k, v in out.timings.items():
            again.timings[k] = again.timings.get(k, 0.0) + v
        return again


#: Pixel data elements: their content enters the identity through the volumes read from them.
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})


def header_digest(ds: Dataset) -> str:
    """SHA-256 of every element of a dataset but its pixel data (nested sequences included): the
    same whether the file was read with or without pixels."""
    h = hashlib.sha256()
    for elem in ds.iterall():
        if int(elem.tag) in _PIXEL_TAGS or elem.VR == "SQ":
            continue
        h.update(f"{int(elem.tag):08X}{elem.VR}{elem.value!r}\n".encode("utf-8", "backslashreplace"))
    return h.hexdigest()


def source_identity(datasets: Sequence[Dataset], volumes: Mapping[str, Volume] | None = None) -> str:
    """SHA-256 of what a SEG is made from: the source instances (SOP Instance UID and a digest of
    the header), and the content and geometry of the volumes read from them (modality order)."""
    lines = sorted({f"{ds.SOPInstanceUID}\t{header_digest(ds)}" for ds in datasets})
    h = hashlib.sha256("\n".join(lines).encode())
    for name in sorted(volumes or {}):
        vol = (volumes or {})[name]
        array = np.ascontiguousarray(vol.array)
        h.update(f"\n{name}\t{array.dtype.str}\t{array.shape}\n".encode())
        h.update(array.tobytes())
        h.update(np.ascontiguousarray(vol.affine, dtype=np.float64).tobytes())
    return h.hexdigest()


def _marked(description: str, intake: Mapping[str, Any]) -> str:
    """The SEG's SeriesDescription, marked when intake found its inputs may be incomplete (so a
    reader in the PACS sees it beside a later, complete version; LO: at most 64 characters)."""
    from glioedge.dicom_io.completeness import INCOMPLETE_MARK

    if (intake.get("completeness") or {}).get("complete", True):
        return description
    return description[: 64 - len(INCOMPLETE_MARK)] + INCOMPLETE_MARK


def _brain_summary(outcome: MaskOutcome, volumes: Mapping[str, Volume], reference: str,
                   ref: Volume) -> tuple[Volume, dict[str, Any]]:
    """The brain (before the tumour-safe margin, on the reference grid) and what the report says
    of it: its volume, the mode, and the series it was computed from."""
    ext = outcome.extraction
    if ext is not None:  # auto: the network's brain; the series it ran on
        mask, modalities = ext.brain, list(ext.params.get("series_run", [reference]))
        extra = {"volume_ml": round(ext.brain_ml, 1), "mask_ml": round(ext.mask_ml, 1),
                 "margin_mm": ext.params.get("margin_mm")}
    else:  # skull-stripped: the union of the channels' nonzero voxels; command: its {input}
        mask = np.asarray(outcome.mask, dtype=bool)
        modalities = sorted(volumes) if outcome.mode == BrainMaskMode.SKULL_STRIPPED.value else [reference]
        extra = {"volume_ml": round(brain_volume_ml(mask, ref.spacing), 1)}
    return ref.with_array(mask), {"mode": outcome.mode, **extra, "from_modalities": modalities}


def _record_algorithm_parameters(seg: Dataset, params: Mapping[str, Any]) -> None:
    """Append ``key=value`` pairs to every segment's AlgorithmParameters (highdicom writes the
    bundle id there; write_seg takes no further parameters)."""
    extra = ",".join(f"{k}={v}" for k, v in params.items())
    for segment in seg.get("SegmentSequence", []):
        for algo in segment.get("SegmentationAlgorithmIdentificationSequence", []):
            current = str(algo.get("AlgorithmParameters", ""))
            algo.AlgorithmParameters = f"{current},{extra}" if current else extra


def _mark_verdict(seg: Dataset, quality: Quality) -> None:
    """Prefix the SEG's SeriesDescription with ``REVIEW`` / ``REJECT`` (what a PACS list shows)
    when the verdict is not ``ok``; the UIDs and references stay as they are."""
    if quality.verdict == OK:
        return
    text = f"{quality.verdict.upper()} {seg.get('SeriesDescription', '')}".strip()
    seg.SeriesDescription = text[:64]  # LO: at most 64 characters
