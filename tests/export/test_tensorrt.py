"""TensorRT engines: built for real where TensorRT and a GPU exist, skipped with a reason else."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from glioedge.bundle import Bundle
from glioedge.errors import BackendError, MissingDependencyError
from glioedge.export.tensorrt import cuda_compute_capability, tensorrt_unavailable_reason


def test_unavailability_is_explained() -> None:
    reason = tensorrt_unavailable_reason()
    assert reason is None or "tensorrt" in reason.lower() or "GPU" in reason or "driver" in reason


def _need_trt() -> None:
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install tensorrt)")
    try:
        cuda_compute_capability()
    except BackendError as exc:
        pytest.skip(f"no CUDA GPU: {exc}")


@pytest.mark.tensorrt
def test_engine_builds_and_matches_pytorch(tiny_bundle: Path, tmp_path: Path) -> None:
    _need_trt()
    from glioedge.export.pipeline import ExportOptions, add_engine

    dst = tmp_path / "b"
    shutil.copytree(tiny_bundle, dst)
    bundle = add_engine(dst, ExportOptions())
    (entry,) = bundle.manifest.engines
    assert entry.compute_capability == cuda_compute_capability()
    assert entry.file.startswith(f"model.sm{entry.compute_capability[0]}")
    parity = bundle.manifest.verification[f"tensorrt_{entry.file}"]
    assert all(r["agreement"] >= 0.999 for k, r in parity.items() if k != "reference")
    Bundle.load(dst)  # engine checksummed


@pytest.mark.tensorrt
def test_ensure_engine_builds_once_then_reuses_the_cache(tiny_bundle: Path, tmp_path: Path) -> None:
    _need_trt()
    from glioedge.export.tensorrt import ensure_engine

    bundle = Bundle.load(tiny_bundle)
    first = ensure_engine(bundle, tmp_path / "cache")
    mtime = first.stat().st_mtime_ns
    assert ensure_engine(bundle, tmp_path / "cache") == first
    assert first.stat().st_mtime_ns == mtime


def test_ensure_engine_without_tensorrt_raises_missing_dependency(tiny_bundle: Path) -> None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        from glioedge.export.tensorrt import ensure_engine

        with pytest.raises(MissingDependencyError, match="pip install tensorrt"):
            ensure_engine(Bundle.load(tiny_bundle), Path("/nonexistent"))
    else:
        pytest.skip("TensorRT is installed here")
