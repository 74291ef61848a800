"""Run the bundle's ``brain_mask.onnx`` on one volume with ONNX Runtime, torch-free.

The input is put onto the network's grid in physical space (orientation ``spec.axes``, spacing
``spec.spacing_mm``, covering the input's field of view; cubic B-spline as upstream's order-3
resize), normalised as upstream does (z-score of the whole volume), padded at the upper end to a
multiple of ``spec.divisor`` and at least ``spec.min_shape``, predicted in one pass per mirror
(the network is fully convolutional and upstream runs whole volumes: patches would change its
instance-norm statistics), and the brain probability is resampled (linear) onto any target grid.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk  # noqa: N813

from glioedge._optional import require
from glioedge.dicom_io import Volume
from glioedge.errors import BackendError, InputError, ModelError
from glioedge.runtime.backends.ort_providers import GPU_EPS, brain_mask_providers, wants_cpu
from glioedge.runtime.skullstrip.spec import BrainMaskSpec, axis_direction

logger = logging.getLogger(__name__)

__all__ = ["BrainMaskModel", "NetworkGrid", "cpu_session_options", "network_grid", "usable_cores"]

_INTERP = {"bspline": sitk.sitkBSpline, "linear": sitk.sitkLinear}


@dataclass(frozen=True)
class NetworkGrid:
    """The network's grid for one input: a SimpleITK reference image (index axes = array axes)."""

    image: sitk.Image

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.image.GetSize())  # type: ignore[return-value]


def network_grid(volume: Volume, spec: BrainMaskSpec) -> NetworkGrid:
    """The grid of orientation ``spec.axes`` and spacing ``spec.spacing_mm`` that covers the
    field of view of ``volume`` (all eight corners, so an oblique input is not cut).

    Raises:
        InputError: the volume is smaller than one network voxel.
    """
    direction = np.asarray(axis_direction(spec.axes), dtype=np.float64).T  # columns = axes
    spacing = np.asarray(spec.spacing_mm, dtype=np.float64)
    n = np.asarray(volume.shape, dtype=np.float64) - 1
    corners = np.array([[a, b, c, 1.0] for a in (0, n[0]) for b in (0, n[1]) for c in (0, n[2])])
    world = (volume.affine @ corners.T)[:3]  # (3, 8) LPS
    local = direction.T @ world  # coordinates along the network axes
    lo, hi = local.min(axis=1), local.max(axis=1)
    size = np.ceil((hi - lo) / spacing - 1e-6).astype(int) + 1
    if (size < 2).any():
        raise InputError(f"volume {volume.shape} spans less than two {spacing} mm voxels along an axis")
    ref = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    ref.SetSpacing([float(s) for s in spacing])
    ref.SetDirection([float(d) for d in direction.ravel()])
    ref.SetOrigin([float(o) for o in direction @ lo])
    return NetworkGrid(ref)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def cpu_session_options(ort: Any, threads: int | None = None, *, memory_arena: bool = False) -> Any:
    """ONNX Runtime session options for the whole-volume brain-mask network on CPU.

    * denormals flushed to zero: the network's activations underflow into denormal floats, which
      make x86 CPUs ~20× slower (upstream needs ``torch.set_flush_denormal(True)`` for the same
      reason); the masks do not change;
    * intra-op threads = the usable cores (ORT's own default counts physical cores of the host,
      not the container's share);
    * all graph optimisations (conv + activation fusion);
    * no CPU memory arena: one whole-volume pass allocates a few large activations, which the
      arena keeps and grows on the next call (measured: 1.6 GiB → 4.0 GiB peak resident over two
      calls on a 128×176×176 grid, at the same speed without it; bench/runtime.py).
    """
    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.set_denormal_as_zero", "1")
    opts.intra_op_num_threads = int(threads) if threads else usable_cores()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_cpu_mem_arena = bool(memory_arena)
    return opts


def _pad_shape(shape: Sequence[int], divisor: int, min_shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(max(int(np.ceil(s / divisor) * divisor), int(m))
                 for s, m in zip(shape, min_shape, strict=True))


def _mirrors(axes: Sequence[int]) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = [()]
    for a in axes:
        out += [(*m, a) for m in out]
    return out


class BrainMaskModel:
    """The brain-mask network of a bundle, on ONNX Runtime.

    Args:
        path: the ``.onnx`` file.
        spec: its manifest entry.
        providers: ONNX Runtime execution providers (default: from ``device``, see
            :func:`glioedge.runtime.backends.ort_providers.brain_mask_providers`).
        threads: intra-op threads for the CPU provider (``None``: the cores this process may use).
        memory_arena: keep ONNX Runtime's CPU memory arena (off by default: see
            :func:`cpu_session_options`).
        device: ``"cpu"``, ``"cuda[:N]"`` or ``None`` (the GPU when onnxruntime lists one).

    Raises:
        MissingDependencyError: onnxruntime is not installed.
        ModelError: the file is missing or not loadable.
        BackendError: a CUDA device was asked for and ONNX Runtime cannot run on it.
    """

    def __init__(self, path: Path | str, spec: BrainMaskSpec, providers: Sequence[Any] | None = None,
                 threads: int | None = None, device: str | None = None, *,
                 memory_arena: bool = False) -> None:
        ort = require("onnxruntime", "running the brain-mask model")
        self.path = Path(path)
        self.spec = spec
        if not self.path.is_file():
            raise ModelError(f"{self.path}: brain-mask model file is missing")
        if providers is None:
            providers = brain_mask_providers(list(ort.get_available_providers()), device)
        opts = cpu_session_options(ort, threads, memory_arena=memory_arena)
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=list(providers))
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"{self.path}: ONNX Runtime cannot load the brain-mask model ({exc})") from exc
        self.providers = tuple(self.session.get_providers())
        if device is not None and not wants_cpu(device) and self.providers[0] not in GPU_EPS:
            raise BackendError(f"brain-mask model: device {device!r} asked for, but ONNX Runtime "
                               f"runs on {self.providers[0]} (run `glioedge doctor`)")
        self.last_timings: dict[str, float] = {}

    @classmethod
    def from_bundle(cls, bundle: Any, **kwargs: Any) -> BrainMaskModel | None:
        """The model of a :class:`glioedge.bundle.Bundle`, or ``None`` when it carries none.

        Raises:
            ModelError: a malformed entry or an unloadable file.
        """
        entry = bundle.manifest.brain_mask
        if not entry:
            return None
        spec = BrainMaskSpec.from_dict(entry)
        return cls(bundle.path(spec.file), spec, **kwargs)

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable summary for reports and the SEG's algorithm parameters."""
        s = self.spec
        return {"model": s.kind, "folds": list(s.folds), "sha256": s.sha256[:16],
                "mirror_axes": list(s.mirror_axes), "providers": list(self.providers)}

    def _run(self, x: np.ndarray) -> np.ndarray:
        s = self.spec
        try:
            out = self.session.run([s.output_name], {s.input_name: x})[0]
        except Exception as exc:  # onnxruntime's errors are untyped
            raise BackendError(f"brain-mask model failed in ONNX Runtime on input {x.shape} "
                               f"({type(exc).__name__}: {exc})") from exc
        if out.shape[0] != 1 or out.shape[2:] != x.shape[2:] or out.shape[1] <= s.brain_class:
            raise BackendError(f"brain-mask model returned {out.shape} for input {x.shape}")
        if s.output == "logits":
            e = np.exp(out - out.max(axis=1, keepdims=True))
            out = e / e.sum(axis=1, keepdims=True)
        return out[0, s.brain_class]

    def predict_network(self, volume: Volume, mirror_axes: Sequence[int] | None = None
                        ) -> tuple[np.ndarray, NetworkGrid]:
        """Brain probability on the network grid of ``volume``.

        Args:
            volume: any orientation and spacing (LPS affine).
            mirror_axes: override ``spec.mirror_axes`` (``()``: one pass, 8× faster).

        Raises:
            InputError: a constant or non-finite image.
            BackendError: ONNX Runtime fails or returns a wrong shape.
        """
        s = self.spec
        t0 = time.perf_counter()
        grid = network_grid(volume, s)
        image = volume.to_sitk()
        if image.GetPixelID() != sitk.sitkFloat32:
            image = sitk.Cast(image, sitk.sitkFloat32)
        resampled = sitk.Resample(image, grid.image, sitk.Transform(), _INTERP[s.interpolation], 0.0,
                                  sitk.sitkFloat32)
        data = sitk.GetArrayFromImage(resampled).transpose(2, 1, 0).astype(np.float32)
        std = float(data.std())
        if not np.isfinite(std) or std == 0:
            raise InputError(f"image for brain extraction is constant or not finite (std {std})")
        data = (data - float(data.mean())) / std
        padded = np.zeros(_pad_shape(data.shape, s.divisor, s.min_shape), dtype=np.float32)
        padded[: data.shape[0], : data.shape[1], : data.shape[2]] = data
        t1 = time.perf_counter()
        mirrors = _mirrors(s.mirror_axes if mirror_axes is None else tuple(mirror_axes))
        prob = np.zeros(padded.shape, dtype=np.float32)
        for flip in mirrors:
            x = np.ascontiguousarray(np.flip(padded, flip) if flip else padded)[None, None]
            p = self._run(x)
            prob += np.flip(p, flip) if flip else p
        prob /= len(mirrors)
        t2 = time.perf_counter()
        self.last_timings = {"resample_in_s": t1 - t0, "network_s": t2 - t1, "passes": float(len(mirrors))}
        logger.debug("brain mask: grid %s (padded %s), %d passes, %.1f s", grid.shape, padded.shape,
                     len(mirrors), t2 - t1)
        return prob[: data.shape[0], : data.shape[1], : data.shape[2]], grid

    def probability(self, volume: Volume, reference: Volume | None = None,
                    mirror_axes: Sequence[int] | None = None) -> np.ndarray:
        """Brain probability of ``volume`` resampled (linear, physical space) onto ``reference``'s
        grid (default: ``volume``'s own grid); 0 outside the network grid.

        Raises:
            InputError: a constant image.
            BackendError: ONNX Runtime fails.
        """
        prob, grid = self.predict_network(volume, mirror_axes)
        target = (reference or volume).to_sitk()
        net = sitk.GetImageFromArray(np.ascontiguousarray(prob.transpose(2, 1, 0)))
        net.CopyInformation(grid.image)
        back = sitk.Resample(net, target, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        return sitk.GetArrayFromImage(back).transpose(2, 1, 0)
