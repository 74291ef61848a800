"""Brain extraction on the edge box, without PyTorch: the bundle's ``brain_mask.onnx`` (HD-BET,
converted at export by :mod:`glioedge.export.brain_mask_export`) run with ONNX Runtime.

Modules: :mod:`.spec` (the manifest entry, from :mod:`glioedge.brain_mask_spec`),
:mod:`.model` (reorient/resample → normalise → predict → back to any grid), :mod:`.safety` (union,
hole filling, margin in mm, grown box around tumour at the border, volume plausibility) and
:mod:`.extract` (the stage: all selected series → one tumour-safe mask).

May import: what ``runtime`` may (``tests/test_architecture.py``): here ``runtime``
(the ONNX Runtime back-end), ``brain_mask_spec``, ``dicom_io``.
"""

from glioedge.runtime.skullstrip.extract import BrainExtraction, SkullStripConfig, extract_brain
from glioedge.runtime.skullstrip.model import BrainMaskModel, network_grid
from glioedge.runtime.skullstrip.safety import (
    brain_volume_ml,
    dilate_mm,
    grow_for_tumour,
    plausibility_warnings,
    tumour_safe_mask,
)
from glioedge.runtime.skullstrip.spec import BRAIN_MASK_FILE, BrainMaskSpec

__all__ = [
    "BRAIN_MASK_FILE",
    "BrainExtraction",
    "BrainMaskModel",
    "BrainMaskSpec",
    "SkullStripConfig",
    "brain_volume_ml",
    "dilate_mm",
    "extract_brain",
    "grow_for_tumour",
    "network_grid",
    "plausibility_warnings",
    "tumour_safe_mask",
]
