"""The bundle manifest: round trip, checksums, refusal of tampered bundles, no torch needed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from glioedge.bundle import (
    FORMAT_VERSION,
    Bundle,
    EngineEntry,
    Manifest,
    compute_bundle_id,
    engine_filename,
    read_manifest,
    write_manifest,
)
from glioedge.errors import ConfigError, ModelError


@pytest.fixture
def bundle_copy(tiny_bundle: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "b"
    shutil.copytree(tiny_bundle, dst)
    return dst


def test_manifest_carries_what_the_runtime_needs(tiny_bundle: Path) -> None:
    m = Bundle.load(tiny_bundle).manifest
    assert m.format_version == FORMAT_VERSION
    assert len(m.bundle_id) == 16
    assert m.modalities == ("flair", "t1ce")
    assert m.preprocess["modalities"] == ["flair", "t1ce"]
    assert m.patch_size == (32, 32, 32)
    assert m.class_names == ("background", "NCR", "ED", "ET")
    assert (m.label_convention, m.label_map) == ("brats2021", {"0": 0, "1": 1, "2": 2, "3": 4})
    assert m.network_plan["name"] == "tiny"
    assert (m.input_name, m.output_name, m.opset) == ("image", "logits", 17)
    assert {"torch", "onnx", "onnxruntime"} <= set(m.exporters)
    assert m.provenance["epoch"] == 3
    assert m.provenance["training"]["data_digest"] == "sha256:abc"
    assert m.postprocess_params().et_min_voxels == 500
    assert m.brain_mask is None and m.engines == ()
    assert set(m.files) == {"model.onnx", "model.fp16.onnx"}


def test_manifest_round_trips(tiny_bundle: Path, tmp_path: Path) -> None:
    m = read_manifest(tiny_bundle)
    entry = EngineEntry("model.sm90.trt10.13.0.fp16.engine", (9, 0), "10.13.0", "fp16",
                        "model.onnx", (1, 2, 4), (32, 32, 32))
    m2 = replace(m, engines=(entry,))
    write_manifest(tmp_path, m2)
    assert read_manifest(tmp_path) == m2
    assert Manifest.from_dict(json.loads(json.dumps(m.to_dict()))) == m


def test_tampered_model_is_refused(bundle_copy: Path) -> None:
    model = bundle_copy / "model.onnx"
    data = bytearray(model.read_bytes())
    data[-10] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"model.onnx: SHA-256"):
        Bundle.load(bundle_copy)
    Bundle.load(bundle_copy, verify=False)  # explicit opt-out still reads the manifest


def test_missing_file_is_refused(bundle_copy: Path) -> None:
    (bundle_copy / "model.fp16.onnx").unlink()
    with pytest.raises(ModelError, match=r"model\.fp16\.onnx: missing"):
        Bundle.load(bundle_copy)


def test_edited_content_field_changes_the_id_and_is_refused(bundle_copy: Path) -> None:
    data = json.loads((bundle_copy / "manifest.json").read_text())
    data["preprocess"]["target_spacing"] = [2.0, 2.0, 2.0]
    (bundle_copy / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="bundle_id"):
        Bundle.load(bundle_copy)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(format_version=99), "bundle format 99"),
        (lambda d: d.pop("modalities"), "lacks the key 'modalities'"),
        (lambda d: d["files"].update({"../evil.onnx": "0" * 64}), "not a relative path"),
        (lambda d: d["onnx"].update(fp16_file="other.onnx"), "no checksum entry"),
        (lambda d: d.update(verified_by="someone"), r"unknown keys \['verified_by'\]"),
        (lambda d: d["engines"].append({"file": "x.engine", "compute_capability": [9, 0],
                                        "tensorrt_version": "10", "precision": "fp16",
                                        "source_onnx": "model.onnx", "batch_profile": [1, 2, 4],
                                        "patch_size": [32, 32, 32], "fast": True}),
         r"unknown keys \['fast'\]"),
    ],
)
def test_malformed_manifests_are_refused(bundle_copy: Path, edit: object, message: str) -> None:
    data = json.loads((bundle_copy / "manifest.json").read_text())
    edit(data)  # type: ignore[operator]
    (bundle_copy / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match=message):
        Bundle.load(bundle_copy)


def test_postprocess_params_reject_unknown_keys() -> None:
    from glioedge.bundle import PostprocessParams

    assert PostprocessParams.from_dict({"et_min_voxels": 10}).et_min_voxels == 10
    with pytest.raises(ConfigError, match=r"unknown keys \['et_min_vox'\]"):
        PostprocessParams.from_dict({"et_min_vox": 10})  # a typo is not silently the default
    with pytest.raises(ConfigError, match="integers"):
        PostprocessParams.from_dict({"et_min_voxels": "many"})


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no manifest\.json"):
        Bundle.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="invalid JSON"):
        Bundle.load(tmp_path)


def test_bundle_id_depends_on_model_and_content_fields(tiny_bundle: Path) -> None:
    m = read_manifest(tiny_bundle).to_dict()
    base = compute_bundle_id("a" * 64, m)
    assert compute_bundle_id("b" * 64, m) != base
    assert compute_bundle_id("a" * 64, {**m, "verification": {}, "engines": [1]}) == base
    assert compute_bundle_id("a" * 64, {**m, "postprocess": {"et_min_voxels": 0}}) != base


def test_engine_filename_names_gpu_and_tensorrt() -> None:
    assert engine_filename((9, 0), "10.13.3.9") == "model.sm90.trt10.13.3.9.fp16.engine"
    assert engine_filename((8, 6), "11.0.0", "fp32") == "model.sm86.trt11.0.0.fp32.engine"
    with pytest.raises(ConfigError):
        engine_filename((9, 0), "10/../x")
    with pytest.raises(ConfigError, match="precision"):
        engine_filename((9, 0), "10.1", "int3")


def test_engine_lookup_and_registration(bundle_copy: Path) -> None:
    bundle = Bundle.load(bundle_copy)
    name = engine_filename((9, 0), "10.13.0")
    (bundle_copy / name).write_bytes(b"engine bytes")
    entry = EngineEntry(name, (9, 0), "10.13.0", "fp16", "model.onnx", (1, 2, 4), (32, 32, 32))
    old_id = bundle.manifest.bundle_id
    bundle.add_engine(entry)
    reloaded = Bundle.load(bundle_copy)
    assert reloaded.manifest.bundle_id == old_id
    assert reloaded.engine_for((9, 0), "10.13.0") == entry
    assert reloaded.engine_for((8, 9), "10.13.0") is None
    (bundle_copy / name).write_bytes(b"other bytes")
    with pytest.raises(ModelError, match="engine"):
        Bundle.load(bundle_copy)


def test_same_checkpoint_gives_the_same_bundle_id(
    tiny_checkpoint: Path, tiny_bundle: Path, tmp_path: Path
) -> None:
    from glioedge.export.pipeline import ExportOptions, export_bundle

    again = export_bundle(tiny_checkpoint, tmp_path / "again", ExportOptions(fp16=False))
    assert again.manifest.bundle_id == Bundle.load(tiny_bundle).manifest.bundle_id


def test_bundle_module_loads_and_verifies_without_torch_or_onnx(tiny_bundle: Path) -> None:
    code = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "onnx", "onnxruntime", "tensorrt"):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        from glioedge.bundle import Bundle
        import glioedge.export.tensorrt  # the runtime builds engines on first use with it
        b = Bundle.load({str(tiny_bundle)!r})
        assert not any(m.split(".")[0] in ("torch", "onnx") for m in sys.modules)
        print(b.manifest.bundle_id)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == Bundle.load(tiny_bundle).manifest.bundle_id


def test_bundle_id_changes_with_a_brain_extractor() -> None:
    from glioedge.bundle import compute_bundle_id

    fields = {k: [k] for k in ("modalities", "preprocess", "patch_size", "num_classes", "label_map",
                               "label_convention", "network_plan", "postprocess")}
    plain = compute_bundle_id("ab" * 32, fields)
    assert compute_bundle_id("ab" * 32, {**fields, "brain_mask": None}) == plain
    with_mask = compute_bundle_id("ab" * 32, {**fields, "brain_mask": {"file": "brain_mask.onnx",
                                                                       "sha256": "cd" * 32}})
    assert with_mask != plain
