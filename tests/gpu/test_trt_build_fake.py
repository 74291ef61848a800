"""The TensorRT builder's calls, through a fake ``tensorrt`` module (no GPU or TensorRT here),
and the CUDA runtime loader finding NVIDIA's CUDA 12 and CUDA 13 wheel layouts."""

from __future__ import annotations

import _json
import ctypes
import enum
import logging
import shutil
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from glioedge.errors import BackendError, ConfigError
from glioedge.gpu import cuda as gcuda
from glioedge.gpu import trt_build


class _Flag(enum.IntEnum):
    STRONGLY_TYPED = 5


class _BuilderFlag(enum.IntEnum):
    FP16 = 0
    OBEY_PRECISION_CONSTRAINTS = 11


def fake_tensorrt(version: str, accept_cache: Any = True) -> types.ModuleType:
    """A ``tensorrt`` stand-in that records what the builder is asked to do."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    calls: dict[str, Any] = {"flags_set": [], "timing_blobs": [], "set_timing": []}
    trt.calls = calls  # type: ignore[attr-defined]

    class Logger:
        WARNING = 2

        def __init__(self, level: int) -> None:
            self.level = level

    class Cache:
        def __init__(self, blob: bytes) -> None:
            self.blob = blob

        def serialize(self) -> bytes:
            return b"timing:" + self.blob

    class Config:
        def set_memory_pool_limit(self, pool: str, size: int) -> None:
            calls["workspace"] = size

        def set_flag(self, flag: Any) -> None:
            calls["flags_set"].append(flag)

        def add_optimization_profile(self, profile: Any) -> None:
            calls["profile"] = profile.shapes

        def create_timing_cache(self, blob: bytes) -> Cache:
            calls["timing_blobs"].append(bytes(blob))
            return Cache(bytes(blob))

        def set_timing_cache(self, cache: Cache, ignore_mismatch: bool) -> bool:
            calls["set_timing"].append((cache.blob, ignore_mismatch))
            self.cache = cache
            return accept_cache(cache.blob) if callable(accept_cache) else accept_cache

        def get_timing_cache(self) -> Cache:
            return self.cache

    class Profile:
        def set_shape(self, name: str, lo: tuple, opt: tuple, hi: tuple) -> None:
            self.shapes = {name: (lo, opt, hi)}

    class Builder:
        def __init__(self, logger: Logger) -> None:
            pass

        def create_network(self, flags: int) -> str:
            calls["network_flags"] = flags
            return "network"

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: str, config: Config) -> bytes:
            return b"engine-bytes"

    class OnnxParser:
        num_errors = 0

        def __init__(self, network: str, logger: Logger) -> None:
            pass

        def parse(self, data: bytes) -> bool:
            calls["parsed"] = data
            return True

    trt.Logger = Logger
    trt.Builder = Builder
    trt.OnnxParser = OnnxParser
    trt.NetworkDefinitionCreationFlag = _Flag
    trt.BuilderFlag = _BuilderFlag
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
    return trt


@pytest.fixture()
def models(tmp_path: Path) -> tuple[Path, Path]:
    fp32, fp16 = tmp_path / "model.onnx", tmp_path / "model.fp16.onnx"
    fp32.write_bytes(b"fp32 graph")
    fp16.write_bytes(b"fp16 graph")
    return fp32, fp16


@pytest.fixture()
def gpu(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """GPUs 0 (sm80) and 1 (sm90); records which one is asked for and made current."""
    seen: dict[str, list[int]] = {"cc": [], "current": []}

    def cc(device: int = 0) -> tuple[int, int]:
        seen["cc"].append(device)
        return (8, 0) if device == 0 else (9, 0)

    monkeypatch.setattr(trt_build, "compute_capability", cc)
    monkeypatch.setattr(trt_build, "_select_device", seen["current"].append)
    return seen


def _use(monkeypatch: pytest.MonkeyPatch, trt: types.ModuleType) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", trt)


@pytest.mark.parametrize("version", ["10.0.1", "10.13.2", "11.0.0"])
def test_every_tensorrt_builds_strongly_typed_from_the_fp16_model(
    version: str, models: tuple[Path, Path], gpu: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trt = fake_tensorrt(version)
    _use(monkeypatch, trt)
    spec = trt_build.EngineSpec(in_channels=2, patch_size=(32, 32, 32), batch_profile=(1, 2, 4),
                                timing_cache_dir=tmp_path / "cache", device=1)
    entry = trt_build.build_engine(*models, tmp_path / "out" / "e.engine", spec)
    calls = trt.calls
    assert calls["network_flags"] == 1 << int(_Flag.STRONGLY_TYPED)
    assert calls["flags_set"] == []  # no FP16 flag, no precision constraints: the graph decides
    assert calls["parsed"] == b"fp16 graph"
    assert calls["profile"] == {"image": ((1, 2, 32, 32, 32), (2, 2, 32, 32, 32), (4, 2, 32, 32, 32))}
    assert calls["set_timing"] == [(b"", False)]
    assert gpu["cc"] == [1] and gpu["current"] == [1]  # device 1 named and built on
    assert entry.compute_capability == (9, 0)
    assert (entry.precision, entry.source_onnx) == ("fp16", "model.fp16.onnx")
    assert entry.tensorrt_version == version
    cache = tmp_path / "cache" / f"timing.sm90.trt{version}.cache"
    assert cache.read_bytes() == b"timing:"
    assert (tmp_path / "out" / "e.engine").read_bytes() == b"engine-bytes"


def test_fp32_engine_comes_from_the_fp32_model(models: tuple[Path, Path], gpu: dict, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    trt = fake_tensorrt("10.3.0")
    _use(monkeypatch, trt)
    spec = trt_build.EngineSpec(in_channels=2, patch_size=(16, 16, 16), precision="fp32")
    entry = trt_build.build_engine(*models, tmp_path / "e.engine", spec)
    assert trt.calls["parsed"] == b"fp32 graph" and entry.source_onnx == "model.onnx"
    assert trt.calls["network_flags"] == 1 << int(_Flag.STRONGLY_TYPED)
    assert gpu["cc"] == [0]


def test_timing_caches_are_kept_per_gpu_architecture_and_tensorrt_version(tmp_path: Path) -> None:
    names = {trt_build.timing_cache_path(tmp_path, cc, v).name
             for cc in ((8, 0), (9, 0)) for v in ("10.13.0", "11.0.0")}
    assert len(names) == 4


def test_a_rejected_timing_cache_is_replaced_by_an_empty_one(
    models: tuple[Path, Path], gpu: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    trt = fake_tensorrt("10.13.0", accept_cache=lambda blob: blob == b"")
    _use(monkeypatch, trt)
    cache = trt_build.timing_cache_path(tmp_path, (8, 0), "10.13.0")
    cache.write_bytes(b"stale")
    spec = trt_build.EngineSpec(in_channels=2, patch_size=(16, 16, 16), timing_cache_dir=tmp_path)
    with caplog.at_level(logging.WARNING):
        trt_build.build_engine(*models, tmp_path / "e.engine", spec)
    assert trt.calls["set_timing"] == [(b"stale", False), (b"", False)]
    assert "rejected the timing cache" in caplog.text
    assert cache.read_bytes() == b"timing:"  # rewritten from the fresh cache


def test_a_refused_empty_timing_cache_is_an_error(models: tuple[Path, Path], gpu: dict, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _use(monkeypatch, fake_tensorrt("10.13.0", accept_cache=False))
    spec = trt_build.EngineSpec(in_channels=2, patch_size=(16, 16, 16))
    with pytest.raises(BackendError, match="set_timing_cache returned False"):
        trt_build.build_engine(*models, tmp_path / "e.engine", spec)


def test_fp16_without_the_fp16_model_and_old_tensorrt_are_refused(
    models: tuple[Path, Path], gpu: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = trt_build.EngineSpec(in_channels=2, patch_size=(16, 16, 16))
    _use(monkeypatch, fake_tensorrt("10.13.0"))
    with pytest.raises(ConfigError, match=r"model\.fp16\.onnx"):
        trt_build.build_engine(models[0], None, tmp_path / "e.engine", spec)
    _use(monkeypatch, fake_tensorrt("8.6.1"))
    with pytest.raises(ConfigError, match=r"≥ 10\.0"):
        trt_build.build_engine(*models, tmp_path / "e.engine", spec)


# ------------------------------------------------------------------------------- cudart loader
def _layout(root: Path, sub: str, name: str, source: Path | None = None) -> Path:
    folder = root / sub
    folder.mkdir(parents=True)
    target = folder / name
    if source is None:
        target.write_bytes(b"\x7fELF")
    else:
        shutil.copy(source, target)
    return target


def test_cudart_candidates_cover_the_cuda12_and_cuda13_wheel_layouts(tmp_path: Path) -> None:
    cu12 = _layout(tmp_path / "site12", "nvidia/cuda_runtime/lib", "libcudart.so.12")
    cu13 = _layout(tmp_path / "site13", "nvidia/cu13/lib", "libcudart.so.13")
    both = tmp_path / "both"
    b13 = _layout(both, "nvidia/cu13/lib", "libcudart.so.13")
    b12 = _layout(both, "nvidia/cuda_runtime/lib", "libcudart.so.12")
    found = gcuda.cudart_candidates([tmp_path / "site12", tmp_path / "site13", both, tmp_path / "none"])
    assert found[:4] == [str(cu12), str(cu13), str(b13), str(b12)]  # CUDA 13 first within a folder
    assert found[4:] == list(gcuda.SYSTEM_NAMES)


@pytest.mark.parametrize(("sub", "name"), [("nvidia/cuda_runtime/lib", "libcudart.so.12"),
                                           ("nvidia/cu13/lib", "libcudart.so.13")])
def test_load_cudart_opens_the_library_of_either_layout(tmp_path: Path, sub: str, name: str) -> None:
    # Any real shared object stands in for libcudart: the point is which file gets opened.
    lib_file = _layout(tmp_path, sub, name, source=Path(_json.__file__))
    lib = gcuda.load_cudart([tmp_path])
    assert isinstance(lib, ctypes.CDLL)
    assert lib._name == str(lib_file)


def test_device_index_parses_cuda_strings() -> None:
    assert [gcuda.device_index(d) for d in (None, "cuda", "cuda:3", "CUDA:1", 2)] == [0, 0, 3, 1, 2]
    with pytest.raises(BackendError, match="not a CUDA device"):
        gcuda.device_index("cpu")


# --------------------------------------------------- engines built on first use (issue 23: 1, 9, 11)
def _bundle(root: Path, fp16: bool = True, engines: tuple = ()) -> Any:
    """What ensure_engine reads of a bundle: models, manifest checksums, the bundle's engines."""
    import types as _t

    from glioedge.bundle import sha256_file

    root.mkdir(parents=True, exist_ok=True)
    (root / "model.onnx").write_bytes(b"fp32 graph")
    files = {"model.onnx": sha256_file(root / "model.onnx")}
    if fp16:
        (root / "model.fp16.onnx").write_bytes(b"fp16 graph")
        files["model.fp16.onnx"] = sha256_file(root / "model.fp16.onnx")
    manifest = _t.SimpleNamespace(bundle_id="b42", files=files, modalities=("flair", "t1ce"),
                                  patch_size=(16, 16, 16), engines=engines)

    def engine_for(cc: tuple, version: str, precision: str) -> Any:
        return next((e for e in engines if (tuple(e.compute_capability), e.tensorrt_version,
                                            e.precision) == (tuple(cc), version, precision)), None)

    return _t.SimpleNamespace(root=root, manifest=manifest, model_path=root / "model.onnx",
                              fp16_model_path=root / "model.fp16.onnx" if fp16 else None,
                              engine_for=engine_for, path=lambda rel: root / rel)


class Builds:
    """Counts engine builds (each writes b'engine-bytes')."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = trt_build.build_engine

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(trt_build, "build_engine", counted)


@pytest.fixture()
def named_gpu(gpu: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """GPU 0 and 2 are both sm80 (say an A100 and an A30), GPU 1 is sm90."""
    names = {0: "NVIDIA A100-SXM4-80GB", 1: "NVIDIA H100", 2: "NVIDIA A30"}
    monkeypatch.setattr(trt_build, "compute_capability", lambda device=0: (9, 0) if device == 1 else (8, 0))
    monkeypatch.setattr(trt_build, "device_name", lambda device=0: names[device], raising=False)


def test_a_swapped_engine_with_a_forged_sidecar_is_rejected_and_rebuilt(
    tmp_path: Path, named_gpu: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    import json

    from glioedge.bundle import sha256_file

    _use(monkeypatch, fake_tensorrt("10.13.0"))
    builds = Builds(monkeypatch)
    bundle, cache = _bundle(tmp_path / "bundle"), tmp_path / "cache"
    engine = trt_build.ensure_engine(bundle, cache)
    assert engine.read_bytes() == b"engine-bytes" and builds.count == 1
    assert trt_build.ensure_engine(bundle, cache) == engine and builds.count == 1  # trusted: reused
    # Someone who can write the cache folder swaps the engine and rewrites its sidecar to match.
    sidecar = engine.with_suffix(".json")
    forged = json.loads(sidecar.read_text())
    engine.write_bytes(b"malicious engine")
    forged["sha256"] = sha256_file(engine)
    forged["hmac"] = "0" * 64
    sidecar.write_text(json.dumps(forged))
    with caplog.at_level(logging.WARNING):
        again = trt_build.ensure_engine(bundle, cache)
    assert again == engine and engine.read_bytes() == b"engine-bytes" and builds.count == 2
    assert "not trusted" in caplog.text and "not sealed by this box" in caplog.text
    assert (cache / "trust.key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("damage", ["truncated", "missing", "other-model", "loose-key"])
def test_an_engine_without_a_valid_trust_record_is_rebuilt(
    damage: str, tmp_path: Path, named_gpu: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _use(monkeypatch, fake_tensorrt("10.13.0"))
    builds = Builds(monkeypatch)
    bundle, cache = _bundle(tmp_path / "bundle"), tmp_path / "cache"
    engine = trt_build.ensure_engine(bundle, cache)
    sidecar = engine.with_suffix(".json")
    if damage == "truncated":  # e.g. a power cut under the old non-atomic write
        sidecar.write_text(sidecar.read_text()[:20])
    elif damage == "missing":
        sidecar.unlink()
    elif damage == "other-model":  # another model (re-signed) under the same bundle id
        from glioedge.bundle import sha256_file

        bundle.fp16_model_path.write_bytes(b"fp16 graph, retrained")
        bundle.manifest.files["model.fp16.onnx"] = sha256_file(bundle.fp16_model_path)
    else:  # a key others can read cannot vouch for anything: replaced, so the record fails
        (cache / "trust.key").chmod(0o644)
    engine.write_bytes(b"stale")
    assert trt_build.ensure_engine(bundle, cache).read_bytes() == b"engine-bytes"
    assert builds.count == 2


def test_engines_built_on_first_use_are_kept_per_gpu_model(
    tmp_path: Path, named_gpu: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _use(monkeypatch, fake_tensorrt("10.13.0"))
    builds = Builds(monkeypatch)
    bundle, cache = _bundle(tmp_path / "bundle"), tmp_path / "cache"
    a100 = trt_build.ensure_engine(bundle, cache, device=0)
    a30 = trt_build.ensure_engine(bundle, cache, device=2)  # same sm80, another GPU model
    assert a100 != a30 and builds.count == 2
    assert a100.name == a30.name == "model.sm80.trt10.13.0.fp16.engine"  # DESIGN's naming
    assert (a100.parent.name, a30.parent.name) == ("NVIDIA-A100-SXM4-80GB", "NVIDIA-A30")


def test_only_bundle_engines_built_for_the_compute_capability_are_used(
    tmp_path: Path, named_gpu: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from glioedge.bundle import EngineEntry

    _use(monkeypatch, fake_tensorrt("10.13.0"))
    builds = Builds(monkeypatch)

    def entry(name: str, hw: str) -> EngineEntry:
        return EngineEntry(file=name, compute_capability=(8, 0), tensorrt_version="10.13.0",
                           precision="fp16", source_onnx="model.fp16.onnx", batch_profile=(1, 2, 4),
                           patch_size=(16, 16, 16), hardware_compatibility=hw)

    portable = _bundle(tmp_path / "p", engines=(entry("model.sm80.trt10.13.0.fp16.engine",
                                                      "same_compute_capability"),))
    shipped = tmp_path / "p" / "model.sm80.trt10.13.0.fp16.engine"
    assert trt_build.ensure_engine(portable, tmp_path / "c") == shipped
    assert builds.count == 0
    one_gpu = _bundle(tmp_path / "n", engines=(entry("model.sm80.trt10.13.0.fp16.engine", "none"),))
    built = trt_build.ensure_engine(one_gpu, tmp_path / "c")
    assert built.parent.name == "NVIDIA-A100-SXM4-80GB" and builds.count == 1


def test_bundle_engines_are_built_for_every_gpu_of_their_compute_capability(
    models: tuple[Path, Path], gpu: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    trt = fake_tensorrt("10.13.0")
    trt.HardwareCompatibilityLevel = types.SimpleNamespace(NONE=0, AMPERE_PLUS=1, SAME_COMPUTE_CAPABILITY=2)
    seen: list[Any] = []
    real_config = trt.Builder.create_builder_config

    def config(self: Any) -> Any:
        c = real_config(self)
        seen.append(c)
        return c

    monkeypatch.setattr(trt.Builder, "create_builder_config", config)
    _use(monkeypatch, trt)
    spec = trt_build.EngineSpec(in_channels=2, patch_size=(16, 16, 16),
                                hardware_compatibility="same_compute_capability")
    entry = trt_build.build_engine(*models, tmp_path / "e.engine", spec)
    assert seen[0].hardware_compatibility_level == 2
    assert entry.hardware_compatibility == "same_compute_capability"
    assert entry.to_dict()["hardware_compatibility"] == "same_compute_capability"
    # A TensorRT without the level: the engine is this GPU model's only, and says so.
    _use(monkeypatch, fake_tensorrt("10.0.1"))
    with caplog.at_level(logging.WARNING):
        old = trt_build.build_engine(*models, tmp_path / "o.engine", spec)
    assert old.hardware_compatibility == "none" and "SAME_COMPUTE_CAPABILITY" in caplog.text
    assert "hardware_compatibility" not in old.to_dict()  # manifests without it read as before


def test_a_bundle_without_the_fp16_model_gets_an_fp32_engine(
    tmp_path: Path, named_gpu: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    trt = fake_tensorrt("10.13.0")
    _use(monkeypatch, trt)
    engine = trt_build.ensure_engine(_bundle(tmp_path / "b", fp16=False), tmp_path / "cache")
    assert trt.calls["parsed"] == b"fp32 graph" and engine.name.endswith(".fp32.engine")


def test_an_unwritable_engine_cache_is_a_backend_error_naming_the_setting(
    tmp_path: Path, named_gpu: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _use(monkeypatch, fake_tensorrt("10.13.0"))
    blocker = tmp_path / "home-is-read-only"
    blocker.write_text("a file where the cache folder would be")
    with pytest.raises(BackendError, match=r"engine_cache"):
        trt_build.ensure_engine(_bundle(tmp_path / "b"), blocker / "engines")


def test_load_nvinfer_finds_the_pip_wheels_tensorrt_libs(tmp_path: Path) -> None:
    # Any real shared object stands in for libnvinfer: the point is which file gets loaded.
    lib = _layout(tmp_path, "tensorrt_libs", "libnvinfer.so.10", source=Path(_json.__file__))
    _layout(tmp_path / "other", "tensorrt_libs", "libnvinfer_plugin.so.10")  # not the core library
    assert trt_build.load_nvinfer([tmp_path / "other", tmp_path]) == str(lib)
    empty = tmp_path / "empty"
    empty.mkdir()
    expected = None
    for name in trt_build.NVINFER_NAMES:  # a system-wide TensorRT, where one is installed
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        expected = name
        break
    assert trt_build.load_nvinfer([empty]) == expected
