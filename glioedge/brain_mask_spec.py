"""What the brain-mask network expects and returns: the ``brain_mask`` entry of a bundle manifest.

A neutral module (like :mod:`glioedge.bundle`): the export writes it and the runtime reads it, so
it lives below both (``glioedge.runtime.skullstrip.spec`` re-exports it).

One frozen dataclass, one source of defaults (those of HD-BET, Isensee et al. 2019). The export
writes :meth:`BrainMaskSpec.to_dict` into ``manifest.json``; the runtime reads it back with
:meth:`BrainMaskSpec.from_dict`, so the runtime never guesses orientation, spacing or
normalisation. Pure data: importable without numpy, torch or onnxruntime.

Orientation: ``axes`` names, for array axes 0, 1, 2 of the network input, the anatomical
direction in which the index increases (``S`` superior, ``A`` anterior, ``L`` left, and their
opposites ``I``, ``P``, ``R``). HD-BET was trained on images in the orientation of the MNI152
template (``fslreorient2std``: NIfTI voxel axes L, A, S), read with SimpleITK, whose arrays are
``(k, j, i)``: so the network's array axes run towards S, A, L.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from glioedge.errors import ModelError

__all__ = ["AXIS_CODES", "BRAIN_MASK_FILE", "BrainMaskSpec", "axis_direction"]

BRAIN_MASK_FILE = "brain_mask.onnx"

#: Anatomical code → unit vector in LPS (DICOM patient coordinates).
AXIS_CODES: dict[str, tuple[float, float, float]] = {
    "L": (1.0, 0.0, 0.0), "R": (-1.0, 0.0, 0.0),
    "P": (0.0, 1.0, 0.0), "A": (0.0, -1.0, 0.0),
    "S": (0.0, 0.0, 1.0), "I": (0.0, 0.0, -1.0),
}  # fmt: skip


def axis_direction(axes: tuple[str, str, str]) -> tuple[tuple[float, float, float], ...]:
    """Columns (LPS unit vectors) of the direction matrix of array axes named by ``axes``.

    Raises:
        ModelError: unknown code, or two axes along the same anatomical line.
    """
    try:
        cols = tuple(AXIS_CODES[a] for a in axes)
    except KeyError as exc:
        raise ModelError(f"brain-mask axes {axes}: unknown code {exc}; valid: {sorted(AXIS_CODES)}") from None
    lines = {tuple(abs(c) for c in col) for col in cols}
    if len(cols) != 3 or len(lines) != 3:
        raise ModelError(f"brain-mask axes {axes} must name three different anatomical lines")
    return cols


@dataclass(frozen=True)
class BrainMaskSpec:
    """The brain-mask model of a bundle and how to feed it.

    Attributes:
        file: ONNX file inside the bundle.
        sha256: SHA-256 of that file (also in the manifest's ``files``).
        kind: network family (``"hd-bet"``).
        folds: upstream folds averaged inside the graph.
        input_name, output_name: ONNX tensor names; input ``[B, 1, X, Y, Z]`` float32, output
            ``[B, K, X, Y, Z]`` float32.
        output: ``"softmax"`` (probabilities, summing to 1 over K) or ``"logits"``.
        brain_class: output channel holding the brain.
        axes: anatomical direction of array axes 0, 1, 2 (see the module docstring).
        spacing_mm: network grid spacing along those axes.
        interpolation: resampling of the input onto the network grid (``"bspline"``: cubic, as
            upstream's order-3 resize).
        normalisation: ``"zscore-volume"``: subtract the mean and divide by the standard deviation
            of the whole resampled volume, background included, as upstream does.
        divisor: every spatial size must be a multiple of this (4 stride-2 stages → 16).
        min_shape: the volume is padded (at the upper end, with 0 after normalisation) to at
            least this size, as upstream does.
        mirror_axes: array axes of test-time mirroring (upstream: all three; ``()`` is 8× faster).
        threshold: brain where the brain probability (averaged over mirrors) exceeds this.
        opset: ONNX opset of the file.
        source: licence and provenance of the weights (package, version, URLs, per-fold SHA-256,
            citation, how they were read).
        verification: parity of the ONNX graph with the PyTorch network at export.
    """

    file: str = BRAIN_MASK_FILE
    sha256: str = ""
    kind: str = "hd-bet"
    folds: tuple[int, ...] = (0,)
    input_name: str = "image"
    output_name: str = "probabilities"
    output: str = "softmax"
    brain_class: int = 1
    axes: tuple[str, str, str] = ("S", "A", "L")
    spacing_mm: tuple[float, float, float] = (1.5, 1.5, 1.5)
    interpolation: str = "bspline"
    normalisation: str = "zscore-volume"
    divisor: int = 16
    min_shape: tuple[int, int, int] = (128, 128, 128)
    mirror_axes: tuple[int, ...] = ()
    threshold: float = 0.5
    opset: int = 17
    source: dict[str, Any] = field(default_factory=dict)
    verification: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        axis_direction(self.axes)
        if self.output not in ("softmax", "logits"):
            raise ModelError(f"brain-mask output {self.output!r}; valid: softmax, logits")
        if self.interpolation not in ("bspline", "linear"):
            raise ModelError(f"brain-mask interpolation {self.interpolation!r}; valid: bspline, linear")
        if self.normalisation != "zscore-volume":
            raise ModelError(f"brain-mask normalisation {self.normalisation!r}; valid: zscore-volume")
        if any(s <= 0 for s in self.spacing_mm) or self.divisor < 1:
            raise ModelError(f"brain-mask spacing {self.spacing_mm} / divisor {self.divisor} invalid")
        if any(a not in (0, 1, 2) for a in self.mirror_axes):
            raise ModelError(f"brain-mask mirror_axes {self.mirror_axes} must be among 0, 1, 2")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (tuples as lists)."""
        d = asdict(self)
        for key in ("folds", "axes", "spacing_mm", "min_shape", "mirror_axes"):
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BrainMaskSpec:
        """Parse a manifest's ``brain_mask`` entry (unknown keys are ignored).

        Raises:
            ModelError: a malformed value.
        """
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        try:
            for key, conv in (("folds", int), ("mirror_axes", int), ("spacing_mm", float),
                              ("min_shape", int), ("axes", str)):
                if key in kw:
                    kw[key] = tuple(conv(x) for x in kw[key])
            for key, conv2 in (("brain_class", int), ("divisor", int), ("opset", int),
                               ("threshold", float)):
                if key in kw:
                    kw[key] = conv2(kw[key])
            return cls(**kw)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"manifest brain_mask entry is malformed ({exc})") from None
