"""Shared fixtures of the runtime tests (the daemon's tests use them too; keep the names).

* ``trained_checkpoint`` (session): a student-only checkpoint of the TINY plan (patch 32³) with
  random He-initialised weights, preprocessing at 2 mm isotropic (the synthetic study's grid, so
  the suite stays fast), saved with :func:`glioedge.train.checkpoint.save_checkpoint`. Needs
  torch; skipped without it.
* ``trained_bundle`` (session): that checkpoint exported once with
  :func:`glioedge.export.pipeline.export_bundle` (FP32 + FP16 ONNX, no engine) → bundle dir.
* ``synthetic_study`` (session): a FLAIR + T1CE DICOM study written with
  :func:`glioedge.synth.dicom_writer.write_synthetic_series` from :func:`glioedge.synth.cohort.make_case`:
  T1CE 96×96×64 at 2 mm (MR Image Storage, series 7, ``<root>/t1ce``) and the same anatomy as a
  2-D FLAIR at 2×2×4 mm (series 3, ``<root>/flair``). Returns the study folder.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from glioedge.dicom_io import Volume
from glioedge.synth import write_synthetic_series
from glioedge.synth.cohort import SyntheticConfig, make_case

#: The study's seed and grids.
STUDY_SEED = 7
T1CE_CONFIG = SyntheticConfig(shape=(96, 96, 64), spacing=(2.0, 2.0, 2.0))
FLAIR_CONFIG = SyntheticConfig(shape=(96, 96, 32), spacing=(2.0, 2.0, 4.0))
NETWORK_SPACING = (2.0, 2.0, 2.0)


def make_tiny_checkpoint(out: Path, seed: int = 0, spacing: tuple[float, ...] = NETWORK_SPACING) -> Path:
    """A TINY-plan student checkpoint with random weights and preprocessing at ``spacing``."""
    torch = pytest.importorskip("torch", reason="building a checkpoint needs torch (glioedge[train])")
    from glioedge.data.preprocess import PreprocessParams
    from glioedge.train.checkpoint import CheckpointMeta, save_checkpoint
    from glioedge.train.networks import build_unet
    from glioedge.train.plan import TINY

    torch.manual_seed(seed)
    student = build_unet(TINY, in_channels=2, num_classes=4, deep_supervision=True)
    meta = CheckpointMeta(
        plan=TINY,
        preprocess=PreprocessParams(modalities=("flair", "t1ce"), target_spacing=spacing).to_dict(),
        teacher_modalities=["t1", "t2", "flair", "t1ce"], student_modalities=["flair", "t1ce"],
        num_classes=4, epoch=0, config={"preset": TINY.name}, metrics={},
        provenance={"note": "random init for runtime tests"}, student_only=True,
    )
    return save_checkpoint(out, meta, {"student": student})


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """See the module docstring."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("runtime-ckpt") / "tiny")


@pytest.fixture(scope="session")
def trained_bundle(trained_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """See the module docstring."""
    pytest.importorskip("onnx", reason="exporting a bundle needs onnx (glioedge[export])")
    pytest.importorskip("onnxruntime", reason="exporting a bundle needs onnxruntime")
    from glioedge.export.pipeline import export_bundle

    out = tmp_path_factory.mktemp("runtime-bundle") / "bundle"
    export_bundle(trained_checkpoint, out)
    return out


def study_volumes(seed: int = STUDY_SEED) -> dict[str, Volume]:
    """The synthetic study's FLAIR and T1CE as volumes on their own grids."""
    t1ce = make_case(seed, T1CE_CONFIG)
    flair = make_case(seed, FLAIR_CONFIG)
    return {"flair": Volume(flair.images["flair"], flair.affine),
            "t1ce": Volume(t1ce.images["t1ce"], t1ce.affine)}


def write_study(root: Path, seed: int = STUDY_SEED) -> Path:
    """Write the synthetic FLAIR + T1CE study under ``root``; returns ``root``."""
    vols = study_volumes(seed)
    write_synthetic_series(root / "flair", vols["flair"], modality="flair", series_number=3)
    write_synthetic_series(root / "t1ce", vols["t1ce"], modality="t1ce", series_number=7)
    return root


@pytest.fixture(scope="session")
def synthetic_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """See the module docstring."""
    return write_study(tmp_path_factory.mktemp("runtime-study") / "study")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """``watch``/``receive`` install their own log handlers on stderr; a later test's captured
    stderr is another stream, so put the root and ``glioedge`` handlers back afterwards."""
    loggers = [logging.getLogger(), logging.getLogger("glioedge")]
    saved = [(lg, list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    yield
    for lg, handlers, level, propagate in saved:
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate
