"""The faster brain extraction (issue 12) against today's on the raw-looking head phantom, with the
real HD-BET: one series instead of two, cropped to the head box, the new ONNX Runtime session
options. Accuracy only (timings are bench/study_latency.py's): brain Dice of the new mask vs
today's ≥ 0.97, tumour recall 1.0, and the session options change no output beyond float noise.
Slow (three HD-BET passes plus the export)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glioedge.data.modalities import Modality
from glioedge.dicom_io import Volume
from glioedge.runtime.skullstrip import BrainMaskModel, BrainMaskSpec, SkullStripConfig, extract_brain
from glioedge.synth.cohort import SyntheticConfig, make_case
from glioedge.synth.head_phantom import add_head

pytestmark = pytest.mark.slow

TODAY = SkullStripConfig(series="all", head_box_mm=None)


@pytest.fixture(scope="module")
def study():
    """FLAIR and T1CE of one case on one grid, with 36 mm of air and noise around the head."""
    case = make_case(7, SyntheticConfig(shape=(100, 118, 84), spacing=(1.5, 1.5, 1.5)))
    vols, truth, tumour = {}, None, None
    for mod in ("flair", "t1ce"):
        head = add_head(case.images[Modality(mod)], case.affine, mod, pad_mm=36.0, seed=12)
        vols[mod] = Volume(head.array, head.affine)
        truth, tumour = head.brain_mask, head.embed(case.label) > 0
    return vols, truth, tumour


@pytest.fixture(scope="module")
def models(hdbet_onnx: tuple[Path, dict]):
    path, entry = hdbet_onnx
    spec = BrainMaskSpec.from_dict(entry)
    return BrainMaskModel(path, spec, memory_arena=True), BrainMaskModel(path, spec)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_one_series_in_the_head_box_matches_today(study, models):
    vols, truth, tumour = study
    old_model, new_model = models
    today = extract_brain(vols, old_model, "t1ce", TODAY)
    new = extract_brain(vols, new_model, "t1ce")
    assert sorted(today.params["series_run"]) == ["flair", "t1ce"] and new.params["series_run"] == ["t1ce"]
    dice = _dice(new.brain, today.brain)
    assert dice >= 0.97, f"brain Dice new vs today {dice:.4f}"
    recall = float((new.mask & tumour).sum() / tumour.sum())
    assert recall == 1.0, f"tumour recall {recall:.5f}"
    assert _dice(new.brain, truth) >= 0.95 and not new.warnings
    print(f"brain Dice new vs today {dice:.4f}, vs truth {_dice(new.brain, truth):.4f} "
          f"(today {_dice(today.brain, truth):.4f}); tumour recall {recall}")


def test_session_options_do_not_change_the_network_output(models):
    old_model, new_model = models
    x = np.random.default_rng(0).normal(size=(1, 1, 128, 128, 128)).astype(np.float32)
    a, b = old_model._run(x), new_model._run(x)
    assert np.abs(a - b).max() < 1e-4
