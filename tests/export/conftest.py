"""Factories for the export tests: a tiny trained-shape checkpoint and its exported bundle."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="export tests need torch (glioedge[train])")
pytest.importorskip("onnx", reason="export tests need onnx (glioedge[export])")
pytest.importorskip("onnxruntime", reason="export tests need onnxruntime (glioedge[export])")

from glioedge.train.checkpoint import CheckpointMeta, save_checkpoint  # noqa: E402
from glioedge.train.networks import build_unet  # noqa: E402
from glioedge.train.plan import TINY, NetworkPlan  # noqa: E402


def preprocess_dict(modalities: tuple[str, ...] = ("flair", "t1ce")) -> dict:
    """The training issue's preprocessing dict (PreprocessParams when available)."""
    try:
        from glioedge.data.preprocess import PreprocessParams

        return PreprocessParams(modalities=modalities).to_dict()
    except ImportError:
        return {"modalities": list(modalities), "target_spacing": [1.0, 1.0, 1.0]}


def make_checkpoint(out: Path, plan: NetworkPlan = TINY, seed: int = 0) -> Path:
    """A student-only checkpoint with random (He-initialised) weights."""
    torch.manual_seed(seed)
    student = build_unet(plan, in_channels=2, num_classes=4, deep_supervision=True)
    meta = CheckpointMeta(
        plan=plan,
        preprocess=preprocess_dict(),
        teacher_modalities=["t1", "t2", "flair", "t1ce"],
        student_modalities=["flair", "t1ce"],
        num_classes=4,
        epoch=3,
        config={"preset": plan.name},
        metrics={"val_dice_student": {"WT": 0.5}},
        provenance={"data_digest": "sha256:abc", "cases": 2},
        student_only=True,
    )
    return save_checkpoint(out, meta, {"student": student})


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture(scope="session")
def tiny_bundle(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle exported once per session (FP32 + FP16 ONNX, no engine)."""
    from glioedge.export.pipeline import export_bundle

    out = tmp_path_factory.mktemp("bundles") / "tiny_bundle"
    export_bundle(tiny_checkpoint, out)
    return out
