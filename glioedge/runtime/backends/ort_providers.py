"""ONNX Runtime execution providers and their options, chosen on purpose (no onnxruntime import).

Every ``onnxruntime-gpu`` wheel lists the TensorRT and CUDA providers whether or not TensorRT,
cuDNN or a GPU are there; a provider that fails to initialise is silently dropped at session
creation. So the providers below are only what is *asked for*; what runs is read back from
``session.get_providers()`` (:func:`active_provider`), and the model file is chosen from that.

* TensorRT provider: asked for only when TensorRT's library loads (:func:`tensorrt_provider_loads`);
  fed ``model.fp16.onnx`` with ``trt_fp16_enable`` off: ONNX Runtime's TensorRT provider then
  builds a *strongly typed* network on TensorRT ≥ 9 (it does so whenever neither
  ``trt_fp16_enable`` nor ``trt_int8_enable`` is set), so the precision is the graph's (FP16
  convolutions, FP32 InstanceNorm), as in glioedge's own engines, on TensorRT 10 and 11 alike
  (docs/gpu.md says why not ``trt_fp16_enable``);
  an explicit min/opt/max profile for the window batch, so a last partial batch does not rebuild
  the engine; engine and timing caches in a folder next to the bundle's other caches.
* CUDA provider: ``cudnn_conv_algo_search`` EXHAUSTIVE for the fixed-size windows of the
  segmentation model (benchmarked once per shape, then cached), HEURISTIC for the brain-mask
  model, whose input size changes with every study (an exhaustive search per study would cost
  more than it saves).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glioedge.errors import BackendError

TRT_EP = "TensorrtExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"
GPU_EPS = (TRT_EP, CUDA_EP)

__all__ = ["CPU_EP", "CUDA_EP", "GPU_EPS", "TRT_EP", "active_provider", "brain_mask_providers",
           "check_provider_devices", "provider_name", "segmentation_providers",
           "tensorrt_provider_loads", "wants_cpu"]


def tensorrt_provider_loads() -> bool:
    """Whether TensorRT's library (libnvinfer) loads here, which ONNX Runtime's TensorRT provider
    needs: every onnxruntime-gpu wheel lists the provider whether or not TensorRT is installed."""
    from glioedge.gpu.trt_build import load_nvinfer

    return load_nvinfer() is not None


def provider_name(provider: Any) -> str:
    """The name of a provider given as a name or a ``(name, options)`` pair."""
    return str(provider if isinstance(provider, str) else provider[0])


def check_provider_devices(session: Any, providers: list[Any]) -> None:
    """Refuse a session whose GPU providers do not run on the ``device_id`` asked for.

    ONNX Runtime's own fallback (``InferenceSession.__init__`` after a provider error, and
    ``run()`` after an ``EPFail``) re-creates the session with ``["CUDAExecutionProvider",
    "CPUExecutionProvider"]`` and **no provider options**: ``cuda:1`` silently becomes GPU 0.
    glioedge turns that fallback off (``enable_fallback=0``) and checks what the session reports.

    Raises:
        BackendError: a GPU provider runs with another (or no) ``device_id`` than asked for.
    """
    asked = {p[0]: p[1] for p in providers if not isinstance(p, str)}
    options = session.get_provider_options()
    for name in session.get_providers():
        if name not in GPU_EPS:
            continue
        want = asked.get(name, {}).get("device_id")
        got = options.get(name, {}).get("device_id")
        if want is None or str(got) != str(want):
            raise BackendError(
                f"onnxruntime runs {name} with device_id {got!r}, but {want!r} was asked for (its "
                "provider options were dropped); refusing to run on another GPU than configured")


def wants_cpu(device: str | None) -> bool:
    return device is not None and str(device).lower().startswith("cpu")


def _device_id(device: str | None) -> int:
    from glioedge.gpu.cuda import device_index

    return device_index(device)


def _no_gpu_provider(device: str | None, available: list[str]) -> BackendError:
    return BackendError(
        f"device {device!r} asked for, but onnxruntime has no GPU provider (available: "
        f"{', '.join(available)}). Install onnxruntime-gpu (pip uninstall onnxruntime; "
        "pip install 'glioedge[gpu-cu12]')"
    )


def _shape(name: str, batch: int, channels: int, patch: tuple[int, ...]) -> str:
    return f"{name}:" + "x".join(str(int(d)) for d in (batch, channels, *patch))


def segmentation_providers(
    available: list[str],
    device: str | None,
    *,
    input_name: str = "image",
    channels: int = 2,
    patch: tuple[int, int, int] = (128, 128, 128),
    batch_size: int = 2,
    cache_dir: Path | None = None,
) -> list[Any]:
    """Providers (with options) asked for, best first, ending with the CPU.

    Raises:
        BackendError: a CUDA device was asked for but no GPU provider is installed.
    """
    if wants_cpu(device):
        return [CPU_EP]
    dev = _device_id(device)
    providers: list[Any] = []
    if TRT_EP in available:
        b = max(1, int(batch_size))
        opts: dict[str, Any] = {
            "device_id": dev,
            "trt_fp16_enable": False,  # the FP16 graph is strongly typed already
            "trt_profile_min_shapes": _shape(input_name, 1, channels, patch),
            "trt_profile_opt_shapes": _shape(input_name, b, channels, patch),
            "trt_profile_max_shapes": _shape(input_name, max(b, 4), channels, patch),
        }
        if cache_dir is not None:
            opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache_dir),
                        trt_timing_cache_enable=True, trt_timing_cache_path=str(cache_dir))
        providers.append((TRT_EP, opts))
    if CUDA_EP in available:
        providers.append((CUDA_EP, {"device_id": dev, "cudnn_conv_algo_search": "EXHAUSTIVE"}))
    if not providers and device is not None:
        raise _no_gpu_provider(device, available)
    return [*providers, CPU_EP]


def brain_mask_providers(available: list[str], device: str | None) -> list[Any]:
    """Providers for the brain-mask model on ``device`` (``None``: the GPU when listed).

    Raises:
        BackendError: a CUDA device was asked for but no CUDA provider is installed.
    """
    if wants_cpu(device):
        return [CPU_EP]
    if CUDA_EP in available:
        return [(CUDA_EP, {"device_id": _device_id(device), "cudnn_conv_algo_search": "HEURISTIC"}),
                CPU_EP]
    if device is not None:
        raise _no_gpu_provider(device, available)
    return [CPU_EP]


def active_provider(session: Any) -> str:
    """The provider that actually runs a session (its first), after ONNX Runtime's fallbacks."""
    return str(next(iter(session.get_providers())))
