"""The brain-mask model's manifest entry; it lives in :mod:`glioedge.brain_mask_spec`, below both
the export (which writes it) and the runtime (which reads it)."""

from glioedge.brain_mask_spec import AXIS_CODES, BRAIN_MASK_FILE, BrainMaskSpec, axis_direction

__all__ = ["AXIS_CODES", "BRAIN_MASK_FILE", "BrainMaskSpec", "axis_direction"]
