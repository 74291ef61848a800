"""How a study is segmented and what is written: :class:`SegmenterConfig`, the one source of the
runtime's defaults (the CLI, the daemon's ``[segmenter]`` table and the Python API all build it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from glioedge.config_keys import reject_unknown_keys
from glioedge.errors import ConfigError
from glioedge.runtime.brain_mask import BrainMaskMode, mask_mode
from glioedge.vocabulary import WINDOW_STEP

__all__ = ["SAVE_BRAIN_MASK", "SegmenterConfig"]

#: Options that do not change the SEG's content, left out of its UIDs.
_NOT_IN_UID = frozenset({"batch_size", "qa_png", "sr", "require_signature", "trusted_keys",
                         "save_brain_mask"})
#: ``save_brain_mask`` values: nothing, the NIfTI, a "Brain" SEG of its own, or both.
SAVE_BRAIN_MASK = ("", "nifti", "seg", "both")


@dataclass(frozen=True)
class SegmenterConfig:
    """How a study is segmented and what is written (one source of defaults).

    Attributes:
        step_size: sliding-window step as a fraction of the patch (nnU-Net: 0.5).
        batch_size: windows per back-end call.
        mirror: test-time mirroring over the three axes (8× the network evaluations).
        postprocess: remove tumour labels outside the brain mask and apply the manifest's
            small-ET → NCR rule.
        brain_mask: ``auto`` (the bundle's brain-mask network; ``skull-stripped`` when the bundle
            has none), ``skull-stripped`` (input already skull-stripped) or ``command``.
        brain_mask_command: template with ``{input}`` / ``{output}`` for ``command`` mode.
        brain_mask_margin_mm: ``auto``: dilation of the brain mask (tumour safety).
        brain_mask_mirror: ``auto``: mirror the brain-mask network (8× slower on CPU).
        brain_mask_regrow_mm: ``auto``: when a tumour component touches the mask border, grow
            the mask this far around it and segment again (0 disables).
        brain_mask_series: ``auto``: ``best`` (the network on the finest series; the union with
            the others only when its brain volume is implausible) or ``all`` (every series).
        brain_mask_head_box_mm: ``auto``: crop to the head's box grown by this margin before the
            network (``None``: the whole field of view).
        segmentation_type: ``BINARY`` or ``LABELMAP`` SEG.
        omit_empty_frames: leave frames without a segment out of the SEG.
        series_number: SeriesNumber of the SEG.
        series_description: SeriesDescription of the SEG.
        qa_png: also write ``qa.png`` in :meth:`Result.write`.
        sr: also write a TID 1500 SR (``sr.dcm``) with the volumes.
        save_brain_mask: also write the brain mask (the brain before the tumour-safe margin):
            ``nifti`` (``brain_mask.nii.gz``), ``seg`` (``brain_seg.dcm``, a SEG of its own with
            one "Brain" segment; DICOM input only) or ``both``; ``""`` writes neither.
        register: rigidly register series whose frame of reference differs from the
            reference's onto it (else such a study is refused); recorded in the SEG and report.
        require_signature: refuse a bundle without a valid ``manifest.sig`` (needs
            ``trusted_keys``: a configuration error without them).
        trusted_keys: Ed25519 public-key PEM files; when given, refuse a bundle not signed by
            one of them. (A signature that is present is always checked.)
    """

    step_size: float = WINDOW_STEP
    batch_size: int = 2
    mirror: bool = False
    postprocess: bool = True
    brain_mask: str = BrainMaskMode.AUTO.value
    brain_mask_command: str | None = None
    brain_mask_margin_mm: float = 3.0
    brain_mask_mirror: bool = False
    brain_mask_regrow_mm: float = 10.0
    brain_mask_series: str = "best"
    brain_mask_head_box_mm: float | None = 10.0
    segmentation_type: str = "BINARY"
    omit_empty_frames: bool = True
    series_number: int = 9901
    series_description: str = "glioedge tumour segmentation"
    qa_png: bool = False
    sr: bool = False
    save_brain_mask: str = ""
    register: bool = False
    require_signature: bool = False
    trusted_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Normalise enums and validate.

        Raises:
            ConfigError: a value outside its accepted set.
        """
        mode = mask_mode(self.brain_mask)
        object.__setattr__(self, "brain_mask", mode.value)
        kind = str(getattr(self.segmentation_type, "value", self.segmentation_type)).upper()
        if kind not in ("BINARY", "LABELMAP"):
            raise ConfigError(f"segmentation_type {self.segmentation_type!r}; valid: BINARY, LABELMAP")
        object.__setattr__(self, "segmentation_type", kind)
        if isinstance(self.trusted_keys, (str, Path)):
            raise ConfigError(f"trusted_keys must be a list of public-key files, got {self.trusted_keys!r}")
        object.__setattr__(self, "trusted_keys", tuple(str(k) for k in self.trusted_keys))
        if self.require_signature and not self.trusted_keys:
            # a signature checked against the key it carries proves nothing: anyone can re-sign
            raise ConfigError(
                "require_signature is set without trusted_keys: any key could re-sign an altered "
                "bundle; list the release public key(s) in trusted_keys (glioedge segment "
                "--trusted-key PUB; daemon: [segmenter] trusted_keys = [\"/etc/glioedge/release.pub\"])")
        if not 0 < float(self.step_size) <= 1:
            raise ConfigError(f"step_size must be in (0, 1], got {self.step_size}")
        if self.save_brain_mask not in SAVE_BRAIN_MASK:
            raise ConfigError(f"save_brain_mask {self.save_brain_mask!r}; valid: nifti, seg, both "
                              f"(or empty)")
        if int(self.batch_size) < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if mode is BrainMaskMode.COMMAND and not self.brain_mask_command:
            raise ConfigError("brain_mask='command' needs brain_mask_command, e.g. "
                              "'mri_synthstrip -i {input} -m {output}'")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SegmenterConfig:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: unknown keys (named) or invalid values.
        """
        reject_unknown_keys(cls, data)
        return cls(**dict(data))

    def uid_dict(self) -> dict[str, Any]:
        """The options that define the SEG's content (hashed into its UIDs).

        ``register`` counts only when on, so the SEGs of studies that never needed it keep the
        UIDs they had before the option existed."""
        d = {k: v for k, v in self.to_dict().items() if k not in _NOT_IN_UID}
        if not d["register"]:
            del d["register"]
        return d
