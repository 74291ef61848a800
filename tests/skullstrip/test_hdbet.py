"""The default extractor end to end: HD-BET fold 0 exported to ONNX, run torch-free with ONNX
Runtime on raw-looking synthetic heads (skull, scalp, orbits, neck, noise), FLAIR and T1CE.

Issue 6's evidence: brain Dice ≥ 0.95 and tumour recall ≥ 0.99 on each sequence. Slow (about
30 s of network time per head on 2 CPU cores, plus the export).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glioedge.data.modalities import Modality
from glioedge.dicom_io import Volume
from glioedge.export.brain_mask_export import HDBET_FOLD_SHA256
from glioedge.runtime.skullstrip import BrainMaskModel, BrainMaskSpec, SkullStripConfig, extract_brain
from glioedge.synth.cohort import SyntheticConfig, make_case
from glioedge.synth.head_phantom import add_head

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def heads():
    case = make_case(5, SyntheticConfig(shape=(100, 118, 84), spacing=(1.5, 1.5, 1.5)))
    out = {}
    for mod in ("flair", "t1ce"):
        head = add_head(case.images[Modality(mod)], case.affine, mod, seed=11)
        out[mod] = (Volume(head.array, head.affine), head.brain_mask, head.embed(case.label) > 0)
    return out


@pytest.fixture(scope="module")
def extracted(hdbet_onnx: tuple[Path, dict], heads):
    path, entry = hdbet_onnx
    model = BrainMaskModel(path, BrainMaskSpec.from_dict(entry), threads=2)
    cfg = SkullStripConfig(margin_mm=3.0)
    return {mod: extract_brain({mod: vol}, model, vol, cfg) for mod, (vol, _, _) in heads.items()}


def test_export_records_licence_provenance_and_parity(hdbet_onnx: tuple[Path, dict]):
    path, entry = hdbet_onnx
    spec = BrainMaskSpec.from_dict(entry)
    assert spec.kind == "hd-bet" and spec.folds == (0,) and len(spec.sha256) == 64
    src = entry["source"]
    assert src["licence"] == "Apache-2.0" and "10.1002/hbm.24750" in src["citation"]
    assert src["weights"]["0"]["sha256"] == HDBET_FOLD_SHA256[0]
    assert "weights_only=True" in src["read_with"]
    assert entry["verification"]["max_abs_prob"] < 1e-3 and entry["verification"]["agreement"] > 0.999
    assert path.stat().st_size > 60e6


@pytest.mark.parametrize("mod", ["flair", "t1ce"])
def test_brain_dice_and_tumour_recall(heads, extracted, mod: str):
    _, truth, tumour = heads[mod]
    out = extracted[mod]
    brain = out.brain
    dice = 2 * (brain & truth).sum() / (brain.sum() + truth.sum())
    recall = (out.mask & tumour).sum() / tumour.sum()
    assert dice >= 0.95, f"{mod}: brain Dice {dice:.4f}"
    assert recall >= 0.99, f"{mod}: tumour recall {recall:.4f}"
    assert 800 < out.brain_ml < 2000 and not out.warnings
    assert out.report()["model"] == "hd-bet"


def test_skull_and_scalp_are_excluded(heads, extracted):
    vol, truth, _ = heads["t1ce"]
    out = extracted["t1ce"]
    outside = out.mask & ~truth
    # what the dilated mask keeps outside the brain is the margin's few mm of CSF and inner table
    assert outside.sum() * np.prod(vol.spacing) / 1000 < 0.25 * out.brain_ml
