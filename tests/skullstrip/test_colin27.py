"""Brain extraction on a real head (issue 22): Colin27 with scalp (Debian's mricron-data), HD-BET
as the product runs it (the bundle's ``brain_mask.onnx``, ONNX Runtime, the Segmenter's defaults:
head box, 3 mm tumour-safe margin, one pass).

* against ``ch2bet``'s brain: Dice, mL missed, mL extra (docs/brain_extraction.md has the numbers
  and a picture of where the two differ);
* the same scan as DICOM at clinical geometries (3-D sagittal 1 mm tilted 15°, 2-D axial 5 mm,
  2-D coronal 4 mm), read by glioedge's intake: the brain agrees with the 1 mm result within
  0.01 Dice, compared in physical space (the 1 mm brain sampled at the clinical voxel centres,
  :func:`glioedge.synth.geometry.mask_on`).

Four HD-BET passes (~10-30 s each on 2 CPU cores) plus the session's export (shared with
test_hdbet.py). bench/brain_extraction_colin27.py prints the same numbers as a table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glioedge.dicom_io import Volume, load_series, scan_folder
from glioedge.runtime.brain_mask import compute_brain_mask
from glioedge.runtime.segmenter import SegmenterConfig
from glioedge.runtime.skullstrip import BrainMaskModel, BrainMaskSpec, SkullStripConfig
from glioedge.synth import TemplateMissingError
from glioedge.synth.colin27 import colin27, write_colin27_series
from glioedge.synth.geometry import CLINICAL_GEOMETRIES, mask_on

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]  # minutes when the machine is shared

#: Measured 2026-12-07 (docs/brain_extraction.md): Dice 0.9456, missed 10.8 mL, extra 187.9 mL
#: (a 1-2 mm rim of CSF that ch2bet's BET leaves out), 4.1 mL of ch2bet outside the dilated mask.
MIN_DICE_VS_CH2BET = 0.94
MAX_MISSED_ML = 15.0
MAX_EXTRA_ML = 200.0
MAX_OUTSIDE_DILATED_ML = 5.0
#: issue 22: every clinical geometry within 0.01 Dice of the 1 mm result (measured 0.9901 tilted
#: sagittal, 0.9903 axial 5 mm, 0.9937 coronal 4 mm: met, with little to spare on two)
MIN_DICE_VS_1MM = 0.99


@pytest.fixture(scope="module")
def head() -> tuple[Volume, np.ndarray]:
    try:
        return colin27()
    except TemplateMissingError as exc:  # CI installs it (.ci/run)
        pytest.skip(f"Colin27 needs Debian's mricron-data: {exc}")


@pytest.fixture(scope="module")
def model(hdbet_onnx: tuple[Path, dict]) -> BrainMaskModel:
    path, entry = hdbet_onnx
    return BrainMaskModel(path, BrainMaskSpec.from_dict(entry))


def _product_stage(volume: Volume, model: BrainMaskModel):
    """The Segmenter's brain-mask stage with SegmenterConfig's defaults, on one series."""
    d = SegmenterConfig()
    cfg = SkullStripConfig(margin_mm=d.brain_mask_margin_mm, mirror=d.brain_mask_mirror,
                           series=d.brain_mask_series, head_box_mm=d.brain_mask_head_box_mm)
    outcome = compute_brain_mask({"t1": volume}, d.brain_mask, "t1", model=model, skullstrip=cfg)
    assert outcome.mode == "auto" and outcome.extraction is not None
    return outcome.extraction


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


@pytest.fixture(scope="module")
def one_mm(head, model):
    return _product_stage(head[0], model)


def test_brain_against_ch2bet(head, one_mm) -> None:
    t1, ref = head
    ml = float(np.prod(t1.spacing)) / 1000
    brain = one_mm.brain
    dice = _dice(brain, ref)
    missed, extra = float((ref & ~brain).sum()) * ml, float((brain & ~ref).sum()) * ml
    print(f"Colin27: Dice {dice:.4f}, missed {missed:.1f} mL, extra {extra:.1f} mL, brain "
          f"{one_mm.brain_ml:.0f} mL vs ch2bet {ref.sum() * ml:.0f} mL")
    assert dice >= MIN_DICE_VS_CH2BET
    assert missed <= MAX_MISSED_ML and extra <= MAX_EXTRA_ML
    assert not one_mm.warnings
    # the tumour model's input (brain + 3 mm) leaves almost nothing of the reference out
    assert float((ref & ~one_mm.mask).sum()) * ml <= MAX_OUTSIDE_DILATED_ML


@pytest.mark.parametrize("name", ["sag1-tilt15", "ax5", "cor4"])
def test_clinical_geometries_agree_with_1mm(head, model, one_mm, name: str, tmp_path: Path) -> None:
    t1, _ = head
    folder = write_colin27_series(tmp_path, CLINICAL_GEOMETRIES[name], t1)
    vol = load_series(next(s for st in scan_folder(folder) for s in st.series.values()))
    out = _product_stage(vol, model)
    on_grid = mask_on(t1.with_array(one_mm.brain), vol)
    dice = _dice(out.brain, on_grid)
    print(f"{name}: Dice vs 1 mm {dice:.4f}, brain {out.brain_ml:.0f} mL (1 mm: {one_mm.brain_ml:.0f})")
    assert dice >= MIN_DICE_VS_1MM, (name, dice)
