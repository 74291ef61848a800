"""From images on the reference grid to a label map on the same grid, driven by the manifest.

manifest modalities → :func:`glioedge.data.preprocess.preprocess` (crop to the brain box,
resample to the network spacing, z-score) → :func:`glioedge.data.sliding_window.sliding_window_predict`
with the back-end's ``predict`` (nnU-Net: Gaussian σ = patch/8, step 0.5, batches of windows,
padding of small volumes, optional mirroring with the mirrored predictions' disagreement,
float32 accumulation whose bound is documented there)
→ :func:`glioedge.data.preprocess.restore_to_original` of the logits (linear) → softmax → argmax
on the reference grid, in nnU-Net v2's order (logits are resampled, then turned into
probabilities; docs/nnunet_parity.md). numpy only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from glioedge.bundle import Manifest
from glioedge.data.preprocess import PreprocessParams, PreprocessRecord, preprocess, restore_to_original
from glioedge.data.sliding_window import count_windows, sliding_window_predict
from glioedge.errors import ModelError
from glioedge.intensity_profile import profile, region_contrasts
from glioedge.progress import current_progress
from glioedge.runtime.backends import Backend
from glioedge.runtime.quality import disagreement_stats, entropy_stats
from glioedge.vocabulary import WINDOW_STEP

logger = logging.getLogger(__name__)

__all__ = ["InferenceOutput", "preprocess_params", "run_inference", "softmax"]

MIRROR_AXES = (0, 1, 2)


@dataclass
class InferenceOutput:
    """A label map on the input grid and how it was made.

    Attributes:
        labels: ``(i, j, k)`` uint8 internal classes on the input grid.
        record: the preprocessing record (crop box, network grid).
        windows: network evaluations per mirror combination.
        timings: seconds for ``preprocess``, ``inference`` and ``resample``.
        profiles: modality → intensity profile of the network input in the brain the network
            calls tumour-free (:func:`glioedge.intensity_profile.profile`), for the quality verdict.
        contrast: region (WT, ET) → modality → how far that region of the tumour the network
            predicts stands out from the brain (:func:`glioedge.intensity_profile.region_contrasts`;
            ``None`` without one).
        entropy: predictive entropy inside the predicted tumour (:func:`.quality.entropy_stats`).
        disagreement: with mirroring, the mirrored predictions' disagreement inside the tumour
            the network predicts on its own grid (:func:`.quality.disagreement_stats`), else None.
        probabilities: ``(K, i, j, k)`` float32 class probabilities on the input grid, kept only
            when asked for (``return_probabilities``; parity benches and tests), else None.
    """

    labels: np.ndarray
    record: PreprocessRecord
    windows: int
    timings: dict[str, float]
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    contrast: dict[str, dict[str, float | None]] = field(default_factory=dict)
    entropy: dict[str, Any] = field(default_factory=dict)
    probabilities: np.ndarray | None = None
    disagreement: dict[str, Any] | None = None


def preprocess_params(manifest: Manifest) -> PreprocessParams:
    """The bundle's preprocessing, checked against its channel order.

    Raises:
        ModelError: the manifest's preprocessing is invalid or disagrees with its modalities.
    """
    try:
        params = PreprocessParams.from_dict(manifest.preprocess)
    except ValueError as exc:
        raise ModelError(f"bundle {manifest.bundle_id}: invalid preprocess parameters ({exc})") from None
    if tuple(params.modalities) != tuple(manifest.modalities):
        raise ModelError(f"bundle {manifest.bundle_id}: preprocess modalities {params.modalities} "
                         f"differ from the manifest's {manifest.modalities}")
    return params


def softmax(logits: np.ndarray, axis: int = 0) -> np.ndarray:
    """Numerically stable softmax, in place on a float32 array (returned)."""
    logits -= logits.max(axis=axis, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=axis, keepdims=True)
    return logits


def run_inference(
    images: Mapping[str, np.ndarray],
    affine: np.ndarray,
    manifest: Manifest,
    backend: Backend,
    *,
    brain_mask: np.ndarray | None = None,
    step_size: float = WINDOW_STEP,
    batch_size: int = 2,
    mirror: bool = False,
    return_probabilities: bool = False,
) -> InferenceOutput:
    """Segment one case whose images share one grid (``affine``, LPS).

    Args:
        images: modality → ``(i, j, k)`` array; the manifest's modalities must be present.
        affine: the grid's 4×4 LPS affine.
        manifest: the bundle manifest (preprocessing, patch size, classes).
        backend: the inference back-end.
        brain_mask: brain mask on the grid (default: nonzero union, as preprocess does).
        step_size: window step as a fraction of the patch.
        batch_size: windows per back-end call.
        mirror: test-time mirroring over the three axes (8 evaluations per window).
        return_probabilities: also return the probabilities on the input grid.

    Raises:
        InputError: a modality is missing, shapes differ, or the brain mask is empty.
        ModelError: the manifest's preprocessing is inconsistent.
        BackendError: the back-end fails or returns the wrong shape.
    """
    params = preprocess_params(manifest)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    case = preprocess(images, affine, params, brain_mask=brain_mask)
    timings["preprocess"] = time.perf_counter() - t0
    windows = count_windows(case.data.shape[1:], manifest.patch_size, step_size)
    logger.info("network grid %s (crop %s), %d windows of %s%s", case.data.shape[1:],
                case.record.crop_bbox, windows, manifest.patch_size, ", mirrored" if mirror else "")
    t0 = time.perf_counter()
    on_device = getattr(backend, "sliding_window", None)  # blends on the GPU (torch back-end)
    window = on_device if callable(on_device) else partial(sliding_window_predict, predict_fn=backend.predict)
    # With mirroring the window also blends the mirrored predictions' disagreement (one more
    # float32 array on the network grid); without it nothing extra is computed.
    extra = {"return_disagreement": True} if mirror else {}
    out = window(
        case.data, patch_size=manifest.patch_size, num_classes=manifest.num_classes,
        step_size=step_size, batch_size=batch_size, mirror_axes=MIRROR_AXES if mirror else (),
        on_progress=current_progress().steps, **extra,
    )
    logits, disagreement = out if mirror else (out, None)
    timings["inference"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    restored = restore_to_original(logits, case.record, is_label=False, on_crop=softmax)
    labels = restored.argmax(axis=0).astype(np.uint8)
    timings["resample"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    net_labels = logits.argmax(axis=0)
    normal = case.mask & (net_labels == 0)  # brain the network calls tumour-free
    profiles = {m: profile(case.data[c], normal) for c, m in enumerate(params.modalities)}
    contrast = region_contrasts(case.data, params.modalities, case.mask, net_labels)
    entropy = entropy_stats(restored, labels)
    mirror_stats = None if disagreement is None else disagreement_stats(disagreement, net_labels)
    timings["quality_signals"] = time.perf_counter() - t0
    return InferenceOutput(labels=labels, record=case.record, windows=windows, timings=timings,
                           profiles=profiles, contrast=contrast, entropy=entropy,
                           probabilities=restored if return_probabilities else None,
                           disagreement=mirror_stats)
