"""ONNX export of the student: checker, tensor names and axes, parity with PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from glioedge.bundle import Bundle
from glioedge.errors import ConfigError, ModelError
from glioedge.export import verify as V
from glioedge.export.onnx_export import check_onnx, export_onnx, onnx_opset, tensor_dims
from glioedge.train.checkpoint import load_student
from glioedge.train.plan import SMALL, TINY

from .conftest import make_checkpoint


def test_onnx_passes_checker_with_native_instance_norm(tiny_bundle: Path) -> None:
    model = check_onnx(Bundle.load(tiny_bundle).model_path)
    assert onnx_opset(model) >= 17
    ops = {n.op_type for n in model.graph.node}
    assert "InstanceNormalization" in ops
    assert not ops & {"ReduceMean", "Loop", "If"}  # no decomposed norm, no control flow


def test_onnx_has_image_logits_and_dynamic_axes(tiny_bundle: Path) -> None:
    model = onnx.load(str(Bundle.load(tiny_bundle).model_path))
    assert tensor_dims(model, "image") == ["batch", 2, "x", "y", "z"]
    assert tensor_dims(model, "logits") == ["batch", 4, "x", "y", "z"]


def test_ort_matches_torch_on_other_batch_and_spatial_sizes(
    tiny_checkpoint: Path, tiny_bundle: Path
) -> None:
    net, _ = load_student(tiny_checkpoint)
    x = np.random.default_rng(1).standard_normal((3, 2, 48, 32, 40)).astype(np.float32)
    parity = V.compare_logits(
        V.torch_runner(net)(x), V.ort_runner(Bundle.load(tiny_bundle).model_path)(x)
    )
    assert parity.max_abs_logit < 1e-3
    assert parity.agreement == 1.0


def test_manifest_records_tiny_fp32_parity_within_1e_3(tiny_bundle: Path) -> None:
    ver = Bundle.load(tiny_bundle).manifest.verification
    assert set(ver["onnxruntime_fp32"]) == {"random", "case"}
    for result in ver["onnxruntime_fp32"].values():
        assert result["max_abs_logit"] < 1e-3
        assert result["agreement"] >= 0.999
        assert result["dice"] >= 0.999
    assert ver["case_source"] == "smooth_random" or ver["case_source"].startswith("training case ")


def test_export_refuses_old_opset_and_unknown_exporter(tmp_path: Path) -> None:
    from glioedge.train.networks import build_unet

    net = build_unet(TINY, 2)
    with pytest.raises(ConfigError, match="opset 13"):
        export_onnx(net, 2, TINY.patch_size, tmp_path / "m.onnx", opset=13)
    with pytest.raises(ConfigError, match="exporter"):
        export_onnx(net, 2, TINY.patch_size, tmp_path / "m.onnx", exporter="tf")


def test_checker_rejects_a_broken_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf")
    with pytest.raises(ModelError, match="ONNX checker"):
        check_onnx(bad)


def test_static_spatial_export_fixes_xyz(tmp_path: Path) -> None:
    from glioedge.train.networks import build_unet

    info = export_onnx(build_unet(TINY, 2), 2, TINY.patch_size, tmp_path / "m.onnx",
                       dynamic_spatial=False)
    assert tensor_dims(onnx.load(str(info.path)), "image") == ["batch", 2, 32, 32, 32]


@pytest.mark.slow
def test_small_preset_parity_within_1e_3(tmp_path: Path) -> None:
    from glioedge.export.pipeline import export_bundle

    ckpt = make_checkpoint(tmp_path / "ckpt", SMALL, seed=1)
    bundle = export_bundle(ckpt, tmp_path / "bundle")
    for result in bundle.manifest.verification["onnxruntime_fp32"].values():
        assert result["max_abs_logit"] < 1e-3
        assert result["agreement"] >= 0.999
    for result in bundle.manifest.verification["onnxruntime_fp16"].values():
        assert result["agreement"] >= 0.999


@pytest.mark.slow
def test_dynamo_exporter_gives_the_same_graph_kind(tmp_path: Path) -> None:
    from glioedge.train.networks import build_unet

    net = build_unet(TINY, 2)
    info = export_onnx(net, 2, TINY.patch_size, tmp_path / "m.onnx", exporter="dynamo", opset=18)
    assert info.opset >= 18
    assert "InstanceNormalization" in info.op_types
    x = np.random.default_rng(0).standard_normal((2, 2, 32, 32, 32)).astype(np.float32)
    net.eval()
    assert V.compare_logits(V.torch_runner(net)(x), V.ort_runner(info.path)(x)).max_abs_logit < 1e-3
