"""TensorRT engines from the bundle's ONNX models (TensorRT 10 and 11 Python API).

* TensorRT 10: the FP32 ``model.onnx`` with ``BuilderFlag.FP16`` and every normalisation layer
  constrained to FP32 (``OBEY_PRECISION_CONSTRAINTS``), the weakly typed path.
* TensorRT 11 removed ``BuilderFlag.FP16``, the precision constraints and weak typing: the
  network is strongly typed and its precision comes from the graph, so the engine is built from
  ``model.fp16.onnx`` (FP16 convolutions, FP32 InstanceNorm and I/O). TensorRT ≥ 10.12 can do
  the same with ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` (``typing="strong"``).

One optimisation profile covers the batch of sliding windows (spatial axes fixed to the patch),
a timing cache speeds up rebuilds, and the workspace is capped. An engine runs only on the GPU
architecture (compute capability) and TensorRT version that built it, hence
:func:`glioedge.bundle.engine_filename` and :func:`ensure_engine`, which the runtime calls to build
and cache one on first use.

This module needs neither torch nor onnx (the runtime has neither); :class:`TrtRunner`, used
for parity checks at export time, takes its CUDA buffers from torch.
"""

from __future__ import annotations

import ctypes
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from glioedge._optional import require
from glioedge.bundle import INPUT_NAME, OUTPUT_NAME, Bundle, EngineEntry, engine_filename, sha256_file
from glioedge.errors import BackendError, ConfigError

logger = logging.getLogger(__name__)

_CU_ATTR_CC_MAJOR = 75  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
_CU_ATTR_CC_MINOR = 76


def cuda_compute_capability(device: int = 0) -> tuple[int, int]:
    """Compute capability of a CUDA device, read through the driver API (no torch needed).

    Raises:
        BackendError: no NVIDIA driver or no such device.
    """
    lib = None
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if lib is None:
        raise BackendError("no NVIDIA driver (libcuda) found: TensorRT needs an NVIDIA GPU")
    dev, major, minor = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    if lib.cuInit(0) != 0:
        raise BackendError("the NVIDIA driver is present but cuInit failed: no usable GPU")
    if lib.cuDeviceGet(ctypes.byref(dev), device) != 0:
        raise BackendError(f"CUDA device {device} does not exist")
    lib.cuDeviceGetAttribute(ctypes.byref(major), _CU_ATTR_CC_MAJOR, dev)
    lib.cuDeviceGetAttribute(ctypes.byref(minor), _CU_ATTR_CC_MINOR, dev)
    return int(major.value), int(minor.value)


def tensorrt_unavailable_reason() -> str | None:
    """Why TensorRT engines cannot be built or run here, or ``None`` when they can."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "the Python package 'tensorrt' is not installed (pip install tensorrt)"
    try:
        cuda_compute_capability()
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
        precision: ``"fp16"`` or ``"fp32"``.
        workspace_bytes: cap of the builder's workspace memory pool.
        typing: ``"auto"`` (weak + FP16 flag where the flag exists, else strong), ``"weak"`` or
            ``"strong"``.
        timing_cache: file to read and update with the builder's timing cache.
    """

    in_channels: int
    patch_size: tuple[int, int, int]
    batch_profile: tuple[int, int, int] = (1, 2, 4)
    precision: str = "fp16"
    workspace_bytes: int = 4 << 30
    typing: str = "auto"
    timing_cache: Path | None = None


def _trt_major(trt: Any) -> int:
    return int(str(trt.__version__).split(".")[0])


def _parse(trt: Any, network: Any, logger_: Any, onnx_path: Path) -> None:
    parser = trt.OnnxParser(network, logger_)
    if hasattr(trt, "OnnxParserFlag") and hasattr(trt.OnnxParserFlag, "NATIVE_INSTANCENORM"):
        parser.set_flag(trt.OnnxParserFlag.NATIVE_INSTANCENORM)  # INormalizationLayer, no plugin
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"TensorRT cannot parse {onnx_path.name}: {errors}")


def _as_normalization(trt: Any, layer: Any) -> Any:
    """The layer as ``INormalizationLayer`` (the Python bindings return the base class)."""
    layer.__class__ = trt.INormalizationLayer
    return layer


def _constrain_norm_fp32(trt: Any, network: Any) -> int:
    """Pin normalisation (and softmax) layers to FP32 in a weakly typed network."""
    keep = {trt.LayerType.NORMALIZATION, trt.LayerType.SOFTMAX}
    count = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in keep:
            if layer.type == trt.LayerType.NORMALIZATION:
                layer = _as_normalization(trt, layer)
                layer.compute_precision = trt.float32  # accumulate statistics in FP32
            layer.precision = trt.float32
            for o in range(layer.num_outputs):
                layer.set_output_type(o, trt.float32)
            count += 1
    return count


def build_engine(onnx_fp32: Path, onnx_fp16: Path | None, engine_path: Path, spec: EngineSpec) -> EngineEntry:
    """Build and serialise an engine; returns its bundle entry (file name relative to the
    engine's directory).

    Raises:
        MissingDependencyError: TensorRT is not installed.
        BackendError: no GPU, the parser or the builder failed.
        ConfigError: a strongly typed FP16 build is asked for without an FP16 ONNX.
    """
    trt = require("tensorrt", "building a TensorRT engine")
    cc = cuda_compute_capability()
    major = _trt_major(trt)
    has_fp16_flag = hasattr(trt.BuilderFlag, "FP16")
    typing = spec.typing
    if typing == "auto":
        typing = "weak" if (spec.precision == "fp16" and has_fp16_flag and major < 11) else "strong"
    if typing == "weak" and spec.precision == "fp16" and not has_fp16_flag:
        raise ConfigError(f"TensorRT {trt.__version__} has no FP16 builder flag; use typing='strong'")
    source = onnx_fp32
    if spec.precision == "fp16" and typing == "strong":
        if onnx_fp16 is None or not Path(onnx_fp16).is_file():
            raise ConfigError(
                f"TensorRT {trt.__version__}: a strongly typed FP16 engine is built from "
                "model.fp16.onnx, which this bundle lacks (export with FP16)"
            )
        source = Path(onnx_fp16)
    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    flags = 0
    if typing == "strong" and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)  # ignored by 11.x
    network = builder.create_network(flags)
    _parse(trt, network, trt_logger, Path(source))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(spec.workspace_bytes))
    if typing == "weak" and spec.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        n = _constrain_norm_fp32(trt, network)
        logger.info("constrained %d normalisation/softmax layers to FP32", n)
    lo, opt, hi = spec.batch_profile
    if not 1 <= lo <= opt <= hi:
        raise ConfigError(f"batch profile {spec.batch_profile} must satisfy 1 ≤ min ≤ opt ≤ max")
    profile = builder.create_optimization_profile()
    c, ps = spec.in_channels, tuple(spec.patch_size)
    profile.set_shape(INPUT_NAME, (lo, c, *ps), (opt, c, *ps), (hi, c, *ps))
    config.add_optimization_profile(profile)
    cache_blob = b""
    if spec.timing_cache is not None and Path(spec.timing_cache).is_file():
        cache_blob = Path(spec.timing_cache).read_bytes()
    cache = config.create_timing_cache(cache_blob)
    config.set_timing_cache(cache, False)
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"TensorRT {trt.__version__} failed to build an engine from {source.name}")
    engine_path = Path(engine_path)
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    engine_path.write_bytes(bytes(serialized))
    if spec.timing_cache is not None:
        Path(spec.timing_cache).write_bytes(bytes(config.get_timing_cache().serialize()))
    logger.info(
        "built %s (%s typing) in %.1f s", engine_path.name, typing, time.perf_counter() - t0
    )
    return EngineEntry(
        file=engine_path.name,
        compute_capability=cc,
        tensorrt_version=str(trt.__version__),
        precision=spec.precision,
        source_onnx=source.name,
        batch_profile=(lo, opt, hi),
        patch_size=ps,  # type: ignore[arg-type]
    )


class TrtRunner:
    """Run a serialised engine on numpy batches (CUDA buffers from torch; for parity checks).

    Raises:
        MissingDependencyError: TensorRT or torch is missing.
        BackendError: the engine does not deserialise (other GPU or TensorRT version).
    """

    def __init__(self, engine_path: Path) -> None:
        self._trt = require("tensorrt", "running a TensorRT engine")
        self._torch = require("torch", "allocating CUDA buffers for a TensorRT engine")
        runtime = self._trt.Runtime(self._trt.Logger(self._trt.Logger.WARNING))
        self._engine = runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self._engine is None:
            raise BackendError(
                f"{engine_path}: TensorRT cannot deserialise this engine (built for another GPU "
                "or TensorRT version?)"
            )
        self._context = self._engine.create_execution_context()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        ctx = self._context
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).cuda()
        ctx.set_input_shape(INPUT_NAME, tuple(xt.shape))
        fp16_out = self._engine.get_tensor_dtype(OUTPUT_NAME) == self._trt.float16
        out_dtype = torch.float16 if fp16_out else torch.float32
        out = torch.empty(tuple(ctx.get_tensor_shape(OUTPUT_NAME)), dtype=out_dtype, device="cuda")
        ctx.set_tensor_address(INPUT_NAME, xt.data_ptr())
        ctx.set_tensor_address(OUTPUT_NAME, out.data_ptr())
        stream = torch.cuda.current_stream()
        if not ctx.execute_async_v3(stream.cuda_stream):
            raise BackendError("TensorRT execution failed")
        stream.synchronize()
        return out.float().cpu().numpy()


def ensure_engine(
    bundle: Bundle,
    cache_dir: Path,
    precision: str = "fp16",
    batch_profile: tuple[int, int, int] = (1, 2, 4),
) -> Path:
    """The engine for this GPU and TensorRT version: the bundle's own, a cached one, or one
    built now from the bundle's ONNX and cached as ``cache_dir/<bundle_id>/<engine file>``
    (with a ``.json`` sidecar holding its SHA-256, checked on reuse).

    Raises:
        MissingDependencyError: TensorRT is not installed.
        BackendError: no GPU, or the build failed.
    """
    trt = require("tensorrt", "building a TensorRT engine on first use")
    cc = cuda_compute_capability()
    entry = bundle.engine_for(cc, str(trt.__version__), precision)
    if entry is not None:
        return bundle.path(entry.file)
    name = engine_filename(cc, str(trt.__version__), precision)
    target = Path(cache_dir) / bundle.manifest.bundle_id / name
    sidecar = target.with_suffix(".json")
    if target.is_file() and sidecar.is_file():
        info = json.loads(sidecar.read_text())
        if info.get("sha256") == sha256_file(target):
            return target
        logger.warning("cached engine %s does not match its checksum; rebuilding", target)
    m = bundle.manifest
    spec = EngineSpec(
        in_channels=len(m.modalities),
        patch_size=m.patch_size,
        batch_profile=batch_profile,
        precision=precision,
        timing_cache=target.parent / "timing.cache",
    )
    built = build_engine(bundle.model_path, bundle.fp16_model_path, target, spec)
    sidecar.write_text(json.dumps({"sha256": sha256_file(target), **built.to_dict()}, indent=1))
    return target
