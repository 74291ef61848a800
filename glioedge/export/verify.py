"""Parity of an exported model against the PyTorch student: logits, argmax and Dice.

numpy does the comparison; torch and onnxruntime are loaded lazily for the runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from glioedge._optional import require
from glioedge.bundle import INPUT_NAME
from glioedge.errors import GlioedgeError, ModelError, VerificationError

if TYPE_CHECKING:
    from torch import nn

logger = logging.getLogger(__name__)

Runner = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Parity:
    """Agreement of a model's logits with the reference logits on one input batch.

    Attributes:
        max_abs_logit: max |Δlogit| over all voxels and classes.
        mean_abs_logit: mean |Δlogit|.
        agreement: fraction of voxels with the same argmax class.
        dice: mean Dice over the foreground classes present in either argmax map (1.0 if none).
        dice_per_class: Dice of each foreground class (``None`` where absent in both).
        voxels: voxels compared (batch × spatial).
    """

    max_abs_logit: float
    mean_abs_logit: float
    agreement: float
    dice: float
    dice_per_class: dict[str, float | None]
    voxels: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Thresholds:
    """Worst parity an export accepts (``None`` disables a check)."""

    max_abs_logit: float | None = 1e-3
    min_agreement: float | None = 0.999

    def check(self, parity: Parity, what: str) -> None:
        """Raise when ``parity`` is worse than the thresholds.

        Raises:
            VerificationError: max |Δlogit| above or voxel agreement below the threshold.
        """
        errors = []
        if self.max_abs_logit is not None and not parity.max_abs_logit <= self.max_abs_logit:
            errors.append(f"max |Δlogit| {parity.max_abs_logit:.3g} > {self.max_abs_logit:.3g}")
        if self.min_agreement is not None and not parity.agreement >= self.min_agreement:
            errors.append(
                f"argmax agreement {100 * parity.agreement:.3f} % < {100 * self.min_agreement:.3f} %"
            )
        if errors:
            raise VerificationError(
                f"{what} does not match PyTorch: {'; '.join(errors)} (Dice {parity.dice:.4f}). "
                f"The exported model is not used; check the exporter/opset or relax the "
                f"threshold knowingly"
            )


def dice(a: np.ndarray, b: np.ndarray) -> float | None:
    """Dice of two boolean masks; ``None`` when both are empty."""
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return None
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def compare_logits(
    reference: np.ndarray, test: np.ndarray, class_names: Sequence[str] | None = None
) -> Parity:
    """Compare logits ``[B, K, X, Y, Z]`` of a model with the reference's.

    Raises:
        ModelError: the shapes differ or the test logits hold NaN/Inf.
    """
    if reference.shape != test.shape:
        raise ModelError(f"logits shape {test.shape} differs from the reference's {reference.shape}")
    test = test.astype(np.float32, copy=False)
    if not np.isfinite(test).all():
        raise ModelError("exported model produced NaN or Inf logits")
    diff = np.abs(reference.astype(np.float32) - test)
    ra, ta = reference.argmax(1), test.argmax(1)
    k = reference.shape[1]
    names = list(class_names) if class_names else [str(c) for c in range(k)]
    per_class = {names[c]: dice(ra == c, ta == c) for c in range(1, k)}
    present = [d for d in per_class.values() if d is not None]
    return Parity(
        max_abs_logit=float(diff.max()),
        mean_abs_logit=float(diff.mean()),
        agreement=float((ra == ta).mean()),
        dice=float(np.mean(present)) if present else 1.0,
        dice_per_class=per_class,
        voxels=int(ra.size),
    )


def torch_runner(net: nn.Module) -> Runner:
    """Run ``net`` (eval, no grad, CPU FP32) on a numpy batch."""
    torch = require("torch", "running the PyTorch reference")

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(np.ascontiguousarray(x))).float().numpy()

    return run


def ort_runner(path: Path, providers: Sequence[str] = ("CPUExecutionProvider",)) -> Runner:
    """Run an ONNX model with ONNX Runtime on a numpy batch.

    Raises:
        ModelError: ONNX Runtime cannot load the model.
    """
    ort = require("onnxruntime", "running the exported model with ONNX Runtime")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=list(providers))
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(f"{path}: ONNX Runtime cannot load the model: {exc}") from exc

    def run(x: np.ndarray) -> np.ndarray:
        return sess.run(None, {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})[0]

    return run


def time_runner(run: Runner, x: np.ndarray, repeats: int = 3, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``run(x)``."""
    for _ in range(warmup):
        run(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _smooth_case(
    shape: tuple[int, int, int], channels: int, batch: int, rng: np.random.Generator
) -> np.ndarray:
    """Smooth random volumes with a bright blob, z-scored per channel (an MR-like stand-in)."""
    from scipy import ndimage

    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    out = np.empty((batch, channels, *shape), dtype=np.float32)
    for b in range(batch):
        centre = rng.uniform(-0.4, 0.4, size=(3, 1, 1, 1))
        blob = np.exp(-((grid - centre) ** 2).sum(0) / 0.08)
        for c in range(channels):
            v = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=2.0)
            v = v / (v.std() + 1e-8) + (2.0 + c) * blob
            out[b, c] = (v - v.mean()) / (v.std() + 1e-8)
    return out


def _training_case(
    cases: Sequence[Path], channel_modalities: Sequence[str], modalities: Sequence[str],
    shape: tuple[int, int, int],
) -> tuple[np.ndarray, str] | None:
    """A patch around the tumour of the first readable training case of the run (preprocessed
    by the training itself, so exactly what the network learnt from), with the student's
    channels, or ``None`` when there is none."""
    from glioedge.data.dataset import load_preprocessed

    index = [list(channel_modalities).index(m) for m in modalities if m in channel_modalities]
    if len(index) != len(modalities):
        return None
    for path in cases:
        try:
            case = load_preprocessed(path)
        except GlioedgeError as exc:
            logger.warning("training case %s unreadable for verification (%s)", path.name, exc)
            continue
        image = np.asarray(case.data, dtype=np.float32)[index]
        label = None if case.label is None else np.asarray(case.label)
        if label is not None and (label > 0).any():
            centre = np.argwhere(label > 0).mean(0).round().astype(int)
        else:
            centre = np.array(image.shape[1:]) // 2
        out = np.zeros((len(modalities), *shape), dtype=np.float32)
        src, dst = [], []
        for n, p, c in zip(image.shape[1:], shape, centre, strict=True):
            s0 = int(np.clip(c - p // 2, 0, max(n - p, 0)))
            size = min(n, p)
            d0 = (p - size) // 2
            src.append(slice(s0, s0 + size))
            dst.append(slice(d0, d0 + size))
        out[(slice(None), *dst)] = image[(slice(None), *src)]
        return out[None], f"training case {path.stem}"
    return None


def verification_inputs(
    channels: int,
    patch_size: tuple[int, int, int],
    *,
    modalities: Sequence[str] = (),
    cases: Sequence[Path] = (),
    channel_modalities: Sequence[str] = (),
    batch: int = 2,
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], str]:
    """Inputs for parity checks: ``random`` (standard normal) and ``case`` (a case patch).

    Args:
        cases: the training run's preprocessed cases (``<id>.npy``), whose channels are
            ``channel_modalities``; the first readable one gives the case patch.

    Returns:
        (name → batch ``[B, C, X, Y, Z]`` float32, how the case patch was made:
        ``"training case <id>"`` or ``"smooth_random"`` without training cases).
    """
    rng = np.random.default_rng(seed)
    inputs = {"random": rng.standard_normal((batch, channels, *patch_size)).astype(np.float32)}
    found = _training_case(cases, channel_modalities, modalities, patch_size) if cases else None
    if found is not None:
        case, source = found
        inputs["case"] = np.repeat(case, batch, axis=0)
        return inputs, source
    inputs["case"] = _smooth_case(patch_size, channels, batch, rng)
    return inputs, "smooth_random"


def verify_against_reference(
    reference: dict[str, np.ndarray],
    run: Runner,
    inputs: dict[str, np.ndarray],
    thresholds: Thresholds,
    what: str,
    class_names: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run ``run`` on every input, compare with ``reference`` and enforce ``thresholds``.

    Returns:
        input name → :meth:`Parity.to_dict`.

    Raises:
        ModelError: parity on any input is worse than ``thresholds``.
    """
    results: dict[str, dict[str, Any]] = {}
    for name, x in inputs.items():
        parity = compare_logits(reference[name], run(x), class_names)
        logger.info(
            "%s on %s input: max|Δlogit| %.3g, agreement %.5f, Dice %.4f",
            what, name, parity.max_abs_logit, parity.agreement, parity.dice,
        )
        results[name] = parity.to_dict()
        thresholds.check(parity, f"{what} ({name} input)")
    return results
