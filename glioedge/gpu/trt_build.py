"""TensorRT engines from a bundle's ONNX models (TensorRT ≥ 10.0 Python API), torch-free.

Every engine is built **strongly typed** (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``, in
TensorRT since 10.0; TensorRT 11 is strongly typed only): the precision of every layer comes from
the ONNX graph, so an FP16 engine is built from ``model.fp16.onnx`` (FP16 convolutions, FP32
InstanceNorm and FP32 I/O) and TensorRT 10 and 11 give engines of the same precision. There is no
weakly typed ``BuilderFlag.FP16`` recipe.

One optimisation profile covers the batch of sliding windows (spatial axes fixed to the patch).
The timing cache is kept per (compute capability, TensorRT version), since TensorRT rejects a
cache of another GPU or version; a rejected cache is replaced by an empty one, logged. The engine
is built on the GPU asked for (``device``), whose compute capability names it
(:func:`glioedge.bundle.engine_filename`). :func:`ensure_engine` is what the runtime calls to
build and cache an engine on first use.

Hardware compatibility (TensorRT's ``HardwareCompatibilityLevel``): an engine built with NONE (the
default) is tuned for the one GPU *model* that built it; TensorRT only warns ("Using an engine plan
file across different models of devices is not recommended") when another GPU of the same compute
capability deserialises it. So the two kinds of engine are kept apart:

* a bundle's engines (built at export, shipped to other boxes) are built with
  SAME_COMPUTE_CAPABILITY, so that their name (compute capability + TensorRT version, DESIGN.md)
  says where they run; the runtime uses a bundle engine only when it records that level;
* engines built on first use stay NONE (fastest on this GPU) and are cached per GPU model:
  ``<cache>/<bundle_id>/<device name>/<engine file>``, with a sealed trust record
  (:mod:`glioedge.gpu.engine_trust`) beside each.
"""

from __future__ import annotations

import ctypes
import logging
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glioedge._optional import require
from glioedge.bundle import INPUT_NAME, Bundle, EngineEntry, engine_filename, sha256_file
from glioedge.errors import BackendError, ConfigError
from glioedge.fileio import atomic_write_bytes
from glioedge.gpu.cuda import CudaRuntime, compute_capability, device_name
from glioedge.gpu.engine_trust import EngineTrust

logger = logging.getLogger(__name__)

#: Where engines built on first use and the timing caches live unless told otherwise.
DEFAULT_ENGINE_CACHE = Path.home() / ".cache" / "glioedge" / "engines"

__all__ = ["DEFAULT_ENGINE_CACHE", "EngineSpec", "build_engine", "device_folder", "ensure_engine",
           "load_nvinfer", "tensorrt_unavailable_reason", "timing_cache_path"]

#: TensorRT's core library by soname (TensorRT 10 and 11), after the pip wheels' folder.
NVINFER_NAMES = ("libnvinfer.so.10", "libnvinfer.so.11", "nvinfer_10.dll", "nvinfer_11.dll")


def load_nvinfer(search_dirs: list[str | Path] | None = None) -> str | None:
    """Load TensorRT's core library (libnvinfer) process-wide and return where it came from, or
    ``None`` when it is not installed.

    ONNX Runtime's TensorRT provider links against libnvinfer by soname: once it is loaded here
    (globally), the provider finds it even when it lives only in the ``tensorrt_libs`` folder of
    NVIDIA's pip wheels. A provider whose library cannot load is not asked for at all (see
    :mod:`glioedge.runtime.backends.ort_providers`).
    """
    found: list[str] = []
    for root in search_dirs if search_dirs is not None else sys.path:
        folder = Path(root) / "tensorrt_libs"
        if folder.is_dir():
            found += sorted(str(p) for p in folder.glob("libnvinfer.so.1[0-9]*"))
    for name in [*found, *NVINFER_NAMES]:
        try:
            ctypes.CDLL(name, mode=getattr(ctypes, "RTLD_GLOBAL", 0))
        except OSError:
            continue
        return name
    return None


def device_folder(device_name_: str) -> str:
    """A folder name for a GPU model (``NVIDIA A10`` → ``NVIDIA-A10``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", device_name_).strip("-.") or "gpu"


def tensorrt_unavailable_reason(device: int = 0) -> str | None:
    """Why TensorRT engines cannot be built or run here, or ``None`` when they can."""
    try:
        import tensorrt
    except ImportError:
        return "the Python package 'tensorrt' is not installed (pip install 'glioedge[gpu-cu12]')"
    if _trt_major(tensorrt) < 10:
        return f"TensorRT {tensorrt.__version__} is too old (glioedge needs TensorRT ≥ 10.0)"
    try:
        compute_capability(device)
    except BackendError as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class EngineSpec:
    """How to build an engine.

    Attributes:
        in_channels: input channels (the student's modalities).
        patch_size: window size; fixed in the profile.
        batch_profile: (min, opt, max) windows per call.
        precision: ``"fp16"`` (from ``model.fp16.onnx``) or ``"fp32"`` (from ``model.onnx``).
        workspace_bytes: cap of the builder's workspace memory pool.
        timing_cache_dir: folder of the per-(GPU, TensorRT) timing caches (``None``: no cache).
        device: CUDA ordinal of the GPU to build on.
        hardware_compatibility: ``none`` (this GPU model only; engines built on first use) or
            ``same_compute_capability`` (every GPU of this compute capability; bundle engines).
    """

    in_channels: int
    patch_size: tuple[int, int, int]
    batch_profile: tuple[int, int, int] = (1, 2, 4)
    precision: str = "fp16"
    workspace_bytes: int = 4 << 30
    timing_cache_dir: Path | None = None
    device: int = 0
    hardware_compatibility: str = "none"


def _trt_major(trt: Any) -> int:
    return int(str(trt.__version__).split(".")[0])


def timing_cache_path(folder: Path, cc: tuple[int, int], trt_version: str) -> Path:
    """``folder/timing.sm<cc>.trt<version>.cache``: one cache per GPU architecture and TensorRT."""
    return Path(folder) / f"timing.sm{cc[0]}{cc[1]}.trt{trt_version}.cache"


def _select_device(device: int) -> None:
    """Make ``device`` current: TensorRT builds on the calling thread's current GPU."""
    CudaRuntime(device).close()


def _parse(trt: Any, network: Any, logger_: Any, onnx_path: Path) -> None:
    parser = trt.OnnxParser(network, logger_)
    if hasattr(trt, "OnnxParserFlag") and hasattr(trt.OnnxParserFlag, "NATIVE_INSTANCENORM"):
        parser.set_flag(trt.OnnxParserFlag.NATIVE_INSTANCENORM)  # INormalizationLayer, no plugin
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"TensorRT cannot parse {onnx_path.name}: {errors}")


def _set_timing_cache(config: Any, path: Path | None) -> Any:
    """Load the timing cache at ``path`` into ``config``; a rejected one is replaced by an empty
    cache (``set_timing_cache`` returns False on a cache of another GPU/TensorRT or a corrupt file).

    Raises:
        BackendError: even an empty cache is rejected.
    """
    blob = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(blob)
    if cache is not None and config.set_timing_cache(cache, False):
        return cache
    if blob:
        logger.warning("TensorRT rejected the timing cache %s; starting from an empty one", path)
        cache = config.create_timing_cache(b"")
        if cache is not None and config.set_timing_cache(cache, False):
            return cache
    raise BackendError("TensorRT refused an empty timing cache (set_timing_cache returned False)")


def build_engine(onnx_fp32: Path, onnx_fp16: Path | None, engine_path: Path, spec: EngineSpec) -> EngineEntry:
    """Build and serialise a strongly typed engine; returns its bundle entry (file name relative
    to the engine's directory).

    Raises:
        MissingDependencyError: TensorRT is not installed.
        BackendError: no GPU, the parser or the builder failed.
        ConfigError: TensorRT < 10, an unknown precision, a bad profile, or an FP16 engine asked
            for without ``model.fp16.onnx``.
    """
    trt = require("tensorrt", "building a TensorRT engine")
    if _trt_major(trt) < 10:
        raise ConfigError(f"TensorRT {trt.__version__}: glioedge builds engines with TensorRT ≥ 10.0")
    if spec.precision not in ("fp16", "fp32"):
        raise ConfigError(f"engine precision {spec.precision!r}; valid: fp16, fp32")
    lo, opt, hi = spec.batch_profile
    if not 1 <= lo <= opt <= hi:
        raise ConfigError(f"batch profile {spec.batch_profile} must satisfy 1 ≤ min ≤ opt ≤ max")
    source = Path(onnx_fp32)
    if spec.precision == "fp16":
        if onnx_fp16 is None or not Path(onnx_fp16).is_file():
            raise ConfigError(
                f"TensorRT {trt.__version__}: an FP16 engine is built strongly typed from "
                "model.fp16.onnx, which this bundle lacks (export with FP16)"
            )
        source = Path(onnx_fp16)
    cc = compute_capability(spec.device)
    _select_device(spec.device)
    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    _parse(trt, network, trt_logger, source)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(spec.workspace_bytes))
    profile = builder.create_optimization_profile()
    c, ps = spec.in_channels, tuple(spec.patch_size)
    profile.set_shape(INPUT_NAME, (lo, c, *ps), (opt, c, *ps), (hi, c, *ps))
    config.add_optimization_profile(profile)
    version = str(trt.__version__)
    cache_file = (timing_cache_path(spec.timing_cache_dir, cc, version)
                  if spec.timing_cache_dir is not None else None)
    _set_timing_cache(config, cache_file)
    hardware = _set_hardware_compatibility(trt, config, spec.hardware_compatibility)
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"TensorRT {version} failed to build an engine from {source.name}")
    engine_path = Path(engine_path)
    atomic_write_bytes(engine_path, bytes(serialized))
    if cache_file is not None:
        atomic_write_bytes(cache_file, bytes(config.get_timing_cache().serialize()))
    logger.info("built %s (strongly typed, from %s, GPU %d sm%d%d) in %.1f s", engine_path.name,
                source.name, spec.device, cc[0], cc[1], time.perf_counter() - t0)
    return EngineEntry(
        file=engine_path.name,
        compute_capability=cc,
        tensorrt_version=version,
        precision=spec.precision,
        source_onnx=source.name,
        batch_profile=(lo, opt, hi),
        patch_size=ps,  # type: ignore[arg-type]
        hardware_compatibility=hardware,
    )


def _set_hardware_compatibility(trt: Any, config: Any, level: str) -> str:
    """Set TensorRT's hardware compatibility level; returns the level the engine gets.

    Raises:
        ConfigError: an unknown level.
    """
    if level not in ("none", "same_compute_capability"):
        raise ConfigError(f"hardware compatibility {level!r}; valid: none, same_compute_capability")
    if level == "none":
        return level
    enum = getattr(trt, "HardwareCompatibilityLevel", None)
    value = getattr(enum, "SAME_COMPUTE_CAPABILITY", None)
    if value is None:
        logger.warning("TensorRT %s has no HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY: the "
                       "engine is built for this GPU model only (runtimes will build their own)",
                       trt.__version__)
        return "none"
    config.hardware_compatibility_level = value
    return level


def ensure_engine(
    bundle: Bundle,
    cache_dir: Path,
    precision: str | None = None,
    batch_profile: tuple[int, int, int] = (1, 2, 4),
    device: int = 0,
) -> Path:
    """The engine for GPU ``device`` and this TensorRT: the bundle's own (when built with
    SAME_COMPUTE_CAPABILITY), a trusted cached one, or one built now from the bundle's ONNX and
    cached as ``cache_dir/<bundle_id>/<device name>/<engine file>`` with a sealed trust record
    (:class:`~glioedge.gpu.engine_trust.EngineTrust`); an untrusted cached engine is rebuilt.

    ``precision`` ``None``: FP16 when the bundle has ``model.fp16.onnx``, else FP32.

    Raises:
        MissingDependencyError: TensorRT is not installed.
        BackendError: no GPU, the build failed, or ``cache_dir`` is not writable.
    """
    trt = require("tensorrt", "building a TensorRT engine on first use")
    version = str(trt.__version__)
    if precision is None or (precision == "fp16" and bundle.fp16_model_path is None):
        if precision == "fp16":
            logger.warning("the bundle has no model.fp16.onnx: building an FP32 TensorRT engine")
        precision = "fp16" if bundle.fp16_model_path is not None else "fp32"
    cc = compute_capability(device)
    gpu = device_name(device)
    entry = bundle.engine_for(cc, version, precision)
    if entry is not None and entry.hardware_compatibility == "same_compute_capability":
        return bundle.path(entry.file)
    if entry is not None:
        logger.info("the bundle's engine %s was built for one GPU model (hardware compatibility "
                    "none); using one built for %s", entry.file, gpu)
    source = bundle.fp16_model_path if precision == "fp16" else bundle.model_path
    assert source is not None
    rel = Path(source).relative_to(bundle.root).as_posix()
    model_sha = bundle.manifest.files.get(rel) or sha256_file(source)
    cache_dir = Path(cache_dir)
    name = engine_filename(cc, version, precision)
    target = cache_dir / bundle.manifest.bundle_id / device_folder(gpu) / name
    trust = EngineTrust(cache_dir)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _ = trust.key
    except OSError as exc:
        raise BackendError(f"the engine cache {cache_dir} is not writable ({exc.strerror or exc}); "
                           "set [model] engine_cache (or --engine-cache) to a writable folder") from exc
    if target.is_file():
        reason = trust.engine_untrusted(target, model_sha, device=gpu)
        if reason is None:
            return target
        logger.warning("cached engine %s is not trusted (%s); rebuilding it", target, reason)
    m = bundle.manifest
    spec = EngineSpec(
        in_channels=len(m.modalities),
        patch_size=m.patch_size,
        batch_profile=batch_profile,
        precision=precision,
        timing_cache_dir=cache_dir,
        device=device,
    )
    built = build_engine(bundle.model_path, bundle.fp16_model_path, target, spec)
    if sha256_file(source) != model_sha:
        raise BackendError(f"{rel} changed while its engine was built; not trusting the engine")
    trust.record_engine(target, model_sha, device=gpu, entry=built.to_dict())
    return target
