"""The Triton model repository: config written, parsed back, tensors and shapes right."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from glioedge.bundle import Bundle, EngineEntry, engine_filename, sha256_file
from glioedge.errors import ConfigError
from glioedge.export.triton import parse_pbtxt, to_pbtxt, write_triton_repository


def test_onnx_config_parses_back_with_the_right_tensors(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = Bundle.load(tiny_bundle)
    (path,) = write_triton_repository(bundle, tmp_path / "repo", max_batch_size=4)
    cfg = parse_pbtxt(path.read_text())
    assert cfg["name"] == path.parent.name == "glioedge_student_onnx"
    assert cfg["platform"] == "onnxruntime_onnx"
    assert cfg["max_batch_size"] == 4
    assert cfg["input"] == [{"name": "image", "data_type": "TYPE_FP32", "dims": [2, -1, -1, -1]}]
    assert cfg["output"] == [{"name": "logits", "data_type": "TYPE_FP32", "dims": [4, -1, -1, -1]}]
    params = {p["key"]: p["value"]["string_value"] for p in cfg["parameters"]}
    assert params["glioedge_bundle_id"] == bundle.manifest.bundle_id
    assert params["glioedge_modalities"] == "flair,t1ce"
    model = path.parent / "1" / "model.onnx"
    assert sha256_file(model) == bundle.manifest.files["model.onnx"]


def test_plan_config_fixes_the_patch_and_caps_the_batch(tiny_bundle: Path, tmp_path: Path) -> None:
    shutil.copytree(tiny_bundle, tmp_path / "b")
    # a stand-in plan file: Triton never loads it here, the config is what is tested
    name = engine_filename((9, 0), "10.13.0")
    (tmp_path / "b" / name).write_bytes(b"plan")
    entry = EngineEntry(name, (9, 0), "10.13.0", "fp16", "model.onnx", (1, 2, 4), (32, 32, 32))
    bundle = Bundle.load(tmp_path / "b").add_engine(entry)
    paths = write_triton_repository(bundle, tmp_path / "repo", max_batch_size=8, engine=entry)
    cfg = parse_pbtxt(paths[1].read_text())
    assert cfg["platform"] == "tensorrt_plan"
    assert cfg["max_batch_size"] == 4
    assert cfg["input"][0]["dims"] == [2, 32, 32, 32]
    assert cfg["output"][0] == {"name": "logits", "data_type": "TYPE_FP32", "dims": [4, 32, 32, 32]}
    assert cfg["instance_group"] == [{"count": 1, "kind": "KIND_GPU"}]
    assert (paths[1].parent / "1" / "model.plan").read_bytes() == b"plan"


def test_pbtxt_round_trip_and_errors() -> None:
    msg = {"name": 'a"b', "dims": [1, -1], "nested": {"x": 1.5, "on": True}, "kind": "KIND_CPU"}
    assert parse_pbtxt(to_pbtxt(msg)) == msg
    assert parse_pbtxt('# comment\nname: "m"\ndims: 3\ndims: 4') == {"name": "m", "dims": [3, 4]}
    with pytest.raises(ConfigError):
        parse_pbtxt("input { name: 'x'")


def test_bad_model_name_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model name"):
        write_triton_repository(Bundle.load(tiny_bundle), tmp_path, model_name="a b")
