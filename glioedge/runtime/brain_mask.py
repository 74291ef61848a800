"""Brain extraction: the bundle's network, an external tool (HD-BET, SynthStrip), or none.

BraTS-trained models expect skull-stripped input. Three explicit modes, recorded in every result
and in the SEG's algorithm parameters:

* ``auto`` (default): run the bundle's ``brain_mask.onnx`` (:mod:`glioedge.runtime.skullstrip`,
  HD-BET on ONNX Runtime, torch-free) on the finest series (every series when its brain volume
  is implausible, or with ``series="all"``), union, fill holes, dilate by a margin in mm; when
  the bundle carries no brain-mask model, fall back to ``skull-stripped`` with a warning, and
  the effective mode recorded is ``skull-stripped``;
* ``skull-stripped``: the brain is the union of nonzero voxels over the input channels (what
  :func:`glioedge.data.preprocess.preprocess` assumes without a mask);
* ``command``: a user command template is run without a shell (split with :mod:`shlex`); its
  placeholders ``{input}`` (the reference modality as NIfTI), ``{output}`` (the mask NIfTI it must
  write) and ``{<modality>}`` (e.g. ``{flair}``) are replaced by paths in a private temporary
  folder. Example: ``mri_synthstrip -i {input} -m {output}``. Nonzero output voxels are brain.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from glioedge.dicom_io import Volume
from glioedge.errors import BackendError, ConfigError, InputError

logger = logging.getLogger(__name__)

__all__ = ["BrainMaskMode", "MaskOutcome", "brain_mask", "command_mask", "compute_brain_mask",
           "nonzero_mask"]


class BrainMaskMode(str, Enum):
    """How the brain mask is obtained."""

    AUTO = "auto"
    SKULL_STRIPPED = "skull-stripped"
    COMMAND = "command"

    def __str__(self) -> str:
        return self.value


def mask_mode(value: BrainMaskMode | str) -> BrainMaskMode:
    """Convert once from ``str | BrainMaskMode``.

    Raises:
        ConfigError: unknown mode.
    """
    try:
        return BrainMaskMode(str(getattr(value, "value", value)))
    except ValueError:
        valid = ", ".join(m.value for m in BrainMaskMode)
        raise ConfigError(f"brain_mask {value!r}; valid: {valid}") from None


def nonzero_mask(volumes: Mapping[str, Volume]) -> np.ndarray:
    """Union of nonzero voxels over the channels (all on one grid).

    Raises:
        InputError: the mask is empty (every voxel is 0).
    """
    mask = np.zeros(next(iter(volumes.values())).shape, dtype=bool)
    for vol in volumes.values():
        mask |= np.asarray(vol.array) != 0
    if not mask.any():
        raise InputError("every voxel of the input images is 0: nothing to segment")
    return mask


def command_mask(
    volumes: Mapping[str, Volume], reference: str, command: str, timeout_s: float = 600.0
) -> np.ndarray:
    """Run a brain-extraction command on NIfTI copies of the inputs and read its mask back.

    Args:
        volumes: modality → volume, all on the reference grid.
        reference: modality passed as ``{input}``.
        command: the template (see the module docstring).
        timeout_s: seconds before the command is killed.

    Raises:
        ConfigError: an empty template, or one without ``{output}``.
        BackendError: the command is not found, times out or exits with an error (its stderr tail
            is quoted).
        InputError: the mask file is missing, unreadable, on another grid, or empty.
    """
    if not command or "{output}" not in command:
        raise ConfigError(f"brain_mask_command must contain {{output}}, got {command!r}")
    with tempfile.TemporaryDirectory(prefix="glioedge-bet-") as tmp:
        root = Path(tmp)
        paths = {m: str(vol.to_nifti(root / f"{m}.nii.gz")) for m, vol in volumes.items()}
        out = root / "brain_mask.nii.gz"
        values = {**paths, "input": paths[reference], "output": str(out)}
        try:
            argv = [part.format(**values) for part in shlex.split(command)]
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"brain_mask_command {command!r}: unknown placeholder {exc}; known: "
                f"{', '.join('{' + k + '}' for k in values)}"
            ) from None
        logger.info("brain mask: running %s", argv[0])
        proc = _run_group(argv, command, timeout_s)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout or "").strip()[-500:]
            raise BackendError(f"brain-mask command {command!r} failed with exit code "
                               f"{proc.returncode}: {tail}")
        if not out.is_file():
            raise InputError(f"brain-mask command {command!r} exited 0 but wrote no {{output}} file")
        mask_vol = Volume.from_nifti(out)
        ref = volumes[reference]
        if mask_vol.shape != ref.shape or not np.allclose(mask_vol.affine, ref.affine, atol=1e-3):
            raise InputError(f"brain-mask command {command!r} wrote a mask on grid "
                             f"{mask_vol.shape}, expected the input's grid {ref.shape}")
        mask = np.asarray(mask_vol.array) > 0
    if not mask.any():
        raise InputError(f"brain-mask command {command!r} returned an empty mask")
    return mask


def _run_group(argv: list[str], command: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a session of its own; on a timeout (or any interruption) kill the whole
    process group, so that a tool's own children do not outlive it.

    Raises:
        BackendError: the command is not found or timed out.
    """
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    except FileNotFoundError:
        raise BackendError(f"brain-mask command {argv[0]!r} not found (brain_mask_command="
                           f"{command!r}); install the tool or fix the path") from None
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except BaseException as exc:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):  # a pipe held by a runaway
            proc.communicate(timeout=10)
        if isinstance(exc, subprocess.TimeoutExpired):
            raise BackendError(f"brain-mask command {command!r} timed out after {timeout_s:.0f} s"
                               ) from None
        raise
    with contextlib.suppress(ProcessLookupError, PermissionError):  # children left behind
        os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def brain_mask(
    volumes: Mapping[str, Volume], mode: BrainMaskMode | str, reference: str,
    command: str | None = None,
) -> np.ndarray:
    """The brain mask on the volumes' (shared) grid, by ``mode``.

    Raises:
        ConfigError: unknown mode, or ``command`` mode without a command.
        BackendError: the command fails.
        InputError: an empty mask.
    """
    if mask_mode(mode) is BrainMaskMode.SKULL_STRIPPED:
        return nonzero_mask(volumes)
    if mask_mode(mode) is BrainMaskMode.AUTO:
        raise ConfigError("brain_mask='auto' needs the bundle's brain-mask model: use "
                          "compute_brain_mask(..., model=...)")
    if not command:
        raise ConfigError("brain_mask='command' needs brain_mask_command (e.g. "
                          "'mri_synthstrip -i {input} -m {output}')")
    return command_mask(volumes, reference, command)


@dataclass(frozen=True, eq=False)
class MaskOutcome:
    """The brain mask of a study and how it was made.

    Attributes:
        mask: the mask on the reference grid (dilated and tumour-safe in ``auto`` mode).
        mode: the effective mode (``auto`` falls back to ``skull-stripped`` without a model).
        report: JSON-serialisable details (volumes, warnings, model, margin) for the report.
        extraction: the :class:`~glioedge.runtime.skullstrip.BrainExtraction` in ``auto`` mode.
    """

    mask: np.ndarray
    mode: str
    report: dict[str, Any] = field(default_factory=dict)
    extraction: Any = None


def compute_brain_mask(
    volumes: Mapping[str, Volume], mode: BrainMaskMode | str, reference: str, *,
    command: str | None = None, model: Any = None, skullstrip: Any = None,
) -> MaskOutcome:
    """The brain mask by ``mode``, with the effective mode and a report.

    Args:
        volumes: modality → volume, all on the reference grid.
        mode: ``auto``, ``skull-stripped`` or ``command``.
        reference: the reference modality.
        command: the template of ``command`` mode.
        model: the bundle's :class:`~glioedge.runtime.skullstrip.BrainMaskModel` (``auto``), or
            ``None`` when the bundle carries none.
        skullstrip: :class:`~glioedge.runtime.skullstrip.SkullStripConfig` (``auto``).

    Raises:
        ConfigError: unknown mode, or ``command`` mode without a command.
        BackendError: the extractor (network or command) fails.
        InputError: an empty mask, a constant image, or no brain found.
    """
    m = mask_mode(mode)
    if m is BrainMaskMode.AUTO and model is not None:
        from glioedge.runtime.skullstrip import extract_brain

        ext = extract_brain(volumes, model, reference, skullstrip)
        return MaskOutcome(ext.mask, m.value, ext.report(), ext)
    if m is BrainMaskMode.AUTO:
        logger.warning("brain_mask=auto but the bundle has no brain_mask.onnx: trusting the input "
                       "as skull-stripped (export with --brain-mask to extract)")
        mask = nonzero_mask(volumes)
        return MaskOutcome(mask, BrainMaskMode.SKULL_STRIPPED.value,
                           {"requested": "auto", "fallback": "bundle has no brain_mask.onnx",
                            **_stripped_check(mask)})
    mask = brain_mask(volumes, m, reference, command)
    report = _stripped_check(mask) if m is BrainMaskMode.SKULL_STRIPPED else {"command": command}
    return MaskOutcome(mask, m.value, report)


def _stripped_check(mask: np.ndarray) -> dict[str, Any]:
    """Warn when "skull-stripped" input is nonzero almost everywhere (a raw head in noise)."""
    fraction = float(mask.mean())
    if fraction > 0.6:
        w = (f"{100 * fraction:.0f} % of the voxels are nonzero: the input does not look "
             f"skull-stripped (use brain_mask=auto with a bundle exported with --brain-mask)")
        logger.warning("%s", w)
        return {"nonzero_fraction": round(fraction, 3), "warnings": [w]}
    return {"nonzero_fraction": round(fraction, 3)}
