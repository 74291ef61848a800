"""Which series the brain-mask network runs on: the finest one (``best``, the default), the others
only when its brain volume is implausible; ``all`` keeps the union over every series. Stand-in
network (conftest); the real HD-BET accuracy of the strategy is in test_speed_accuracy.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glioedge.dicom_io import Volume
from glioedge.runtime.skullstrip import BrainMaskModel, SkullStripConfig, extract_brain
from glioedge.runtime.skullstrip.model import cpu_session_options, usable_cores
from tests.skullstrip.conftest import FAKE_SPEC, ellipsoid_volume

# the stand-in's ellipsoid is ~290 mL; plausibility bounds around it make it a "normal" brain
PLAUSIBLE = {"min_ml": 200.0, "max_ml": 400.0}


def _vol(shape, spacing, orientation="axial", **kw) -> Volume:
    img, aff = ellipsoid_volume(shape, spacing, orientation, **kw)
    return Volume(img, aff)


def test_best_runs_the_finest_series_only(fake_model_path: Path):
    fine = _vol((48, 56, 40), (2.0, 2.0, 2.5))
    coarse = _vol((24, 28, 20), (4.0, 4.0, 5.0))
    model = BrainMaskModel(fake_model_path, FAKE_SPEC)
    out = extract_brain({"flair": coarse, "t1ce": fine}, model, "flair", SkullStripConfig(**PLAUSIBLE))
    assert out.params["series_run"] == ["t1ce"] and list(out.per_series_ml) == ["t1ce"]
    assert out.params["strategy"] == "best" and out.mask.shape == coarse.shape
    every = extract_brain({"flair": coarse, "t1ce": fine}, model, "flair",
                          SkullStripConfig(series="all", **PLAUSIBLE))
    assert sorted(every.params["series_run"]) == ["flair", "t1ce"]
    # same object seen on both: the single-series mask is within a voxel's rim of the union
    assert every.mask[out.brain].all()


def test_best_adds_the_others_when_the_volume_is_implausible(fake_model_path: Path):
    # the finest series sees only part of the object (a small ellipsoid): implausible volume →
    # the coarser series is run too and the union keeps what it saw
    fine = _vol((48, 56, 40), (2.0, 2.0, 2.5), semi=(15.0, 15.0, 15.0))
    coarse = _vol((24, 28, 20), (4.0, 4.0, 5.0))
    model = BrainMaskModel(fake_model_path, FAKE_SPEC)
    out = extract_brain({"flair": coarse, "t1ce": fine}, model, "t1ce", SkullStripConfig(**PLAUSIBLE))
    assert out.params["series_run"] == ["t1ce", "flair"]
    assert out.per_series_ml["t1ce"] < PLAUSIBLE["min_ml"] < out.brain_ml


def test_equal_voxels_tie_goes_to_the_series_on_the_reference_grid(fake_model_path: Path):
    axial, sagittal = _vol((32, 32, 32), (3.0, 3.0, 3.0)), _vol((32, 32, 32), (3.0, 3.0, 3.0), "sagittal")
    model = BrainMaskModel(fake_model_path, FAKE_SPEC)
    vols = {"flair": axial, "t1ce": sagittal}
    cfg = SkullStripConfig(**PLAUSIBLE)
    assert extract_brain(vols, model, "t1ce", cfg).params["series_run"] == ["t1ce"]
    assert extract_brain(vols, model, "flair", cfg).params["series_run"] == ["flair"]
    # fused onto one grid, every series ties: the reference series is the one run
    fused = {"flair": axial, "t1ce": Volume(sagittal.array, axial.affine)}
    assert extract_brain(fused, model, "t1ce", cfg).params["series_run"] == ["t1ce"]


def test_session_options_threads_arena_and_same_output(fake_model_path: Path):
    ort = pytest.importorskip("onnxruntime")
    opts = cpu_session_options(ort)
    assert opts.intra_op_num_threads == usable_cores() and not opts.enable_cpu_mem_arena
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    vol = _vol((32, 32, 32), (3.0, 3.0, 3.0))
    new = BrainMaskModel(fake_model_path, FAKE_SPEC).probability(vol)
    old = BrainMaskModel(fake_model_path, FAKE_SPEC, threads=1, memory_arena=True).probability(vol)
    assert np.abs(new - old).max() < 1e-5
