"""The mixed-precision model: InstanceNorm stays FP32, I/O stays FP32, argmax agrees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from glioedge.bundle import Bundle
from glioedge.export import verify as V
from glioedge.export.fp16 import fp32_op_report, tensor_types
from glioedge.train.checkpoint import load_student

FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16


def _fp16_model(bundle_dir: Path) -> onnx.ModelProto:
    path = Bundle.load(bundle_dir).fp16_model_path
    assert path is not None and path.name == "model.fp16.onnx"
    return onnx.load(str(path))


def test_every_instance_norm_computes_in_fp32(tiny_bundle: Path) -> None:
    model = _fp16_model(tiny_bundle)
    types = tensor_types(model)
    norms = [n for n in model.graph.node if n.op_type == "InstanceNormalization"]
    assert len(norms) == 14  # 2 per encoder stage (4) + 2 per decoder stage (3)
    for node in norms:
        assert [types[t] for t in [*node.input, *node.output]] == [FLOAT] * 4, node.name
    assert fp32_op_report(model)["violations"] == []


def test_convolutions_run_in_fp16_with_fp32_io(tiny_bundle: Path) -> None:
    model = _fp16_model(tiny_bundle)
    types = tensor_types(model)
    convs = [n for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    assert convs and all(types[n.output[0]] == FLOAT16 for n in convs)
    assert [i.type.tensor_type.elem_type for i in model.graph.input] == [FLOAT]
    assert [o.type.tensor_type.elem_type for o in model.graph.output] == [FLOAT]
    onnx.checker.check_model(model, full_check=True)


def test_fp16_agrees_on_999_permille_of_voxels(tiny_checkpoint: Path, tiny_bundle: Path) -> None:
    net, _ = load_student(tiny_checkpoint)
    x = np.random.default_rng(7).standard_normal((2, 2, 32, 32, 32)).astype(np.float32)
    path = Bundle.load(tiny_bundle).fp16_model_path
    parity = V.compare_logits(V.torch_runner(net)(x), V.ort_runner(path)(x))
    assert parity.agreement >= 0.999
    for result in Bundle.load(tiny_bundle).manifest.verification["onnxruntime_fp16"].values():
        assert result["agreement"] >= 0.999
