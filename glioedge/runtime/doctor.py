"""``glioedge doctor``: what this machine offers for inference, and which back-end ``auto`` picks.

:func:`probe` collects facts (GPU, driver, CUDA runtime, cuDNN, TensorRT, ONNX Runtime and its
providers, conflicting wheels) without importing torch; :func:`decide` reasons on them the way
:func:`glioedge.runtime.backends.select_backend` and ONNX Runtime will, so the reasoning is tested
with made-up facts; :func:`report` prints both.
"""

from __future__ import annotations

import ctypes
import importlib.metadata as md
import importlib.util
from dataclasses import dataclass, field

from glioedge.errors import BackendError
from glioedge.runtime.backends.ort_providers import CUDA_EP, TRT_EP

__all__ = ["Findings", "decide", "probe", "report"]


@dataclass
class Findings:
    """What :func:`probe` found (``None``: absent)."""

    gpus: list[tuple[int, str, tuple[int, int]]] = field(default_factory=list)
    driver_cuda: int | None = None  # highest CUDA the driver supports, e.g. 12080
    cudart: int | None = None  # CUDA runtime library version, e.g. 12090
    cudnn: int | None = None  # e.g. 91000
    tensorrt: str | None = None
    ort: str | None = None
    ort_dists: list[str] = field(default_factory=list)  # installed onnxruntime* distributions
    ort_providers: list[str] = field(default_factory=list)
    torch: str | None = None
    notes: list[str] = field(default_factory=list)


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _cudnn_version() -> int | None:
    names = ["libcudnn.so.9", "libcudnn.so", "cudnn64_9.dll"]
    try:
        from cuda.pathfinder import load_nvidia_dynamic_lib  # type: ignore[import-not-found]

        path = getattr(load_nvidia_dynamic_lib("cudnn"), "abs_path", None)
        names = [path, *names] if path else names
    except Exception:  # not installed, or cudnn not found by it
        pass
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.cudnnGetVersion.restype = ctypes.c_size_t
        return int(lib.cudnnGetVersion())
    return None


def probe() -> Findings:
    """Look at this machine (no torch import; a missing piece is a finding, not an error)."""
    from glioedge.gpu import cuda

    f = Findings()
    try:
        f.gpus = cuda.devices()
    except BackendError as exc:
        f.notes.append(str(exc))
    f.driver_cuda = cuda.driver_version()
    try:
        f.cudart = cuda.runtime_version()
    except BackendError as exc:
        f.notes.append(str(exc))
    f.cudnn = _cudnn_version()
    if importlib.util.find_spec("tensorrt") is not None:
        try:
            import tensorrt

            f.tensorrt = str(tensorrt.__version__)
        except Exception as exc:  # a broken TensorRT install fails in many ways
            f.notes.append(f"tensorrt is installed but does not import: {exc}")
    f.ort_dists = [d for d in ("onnxruntime", "onnxruntime-gpu") if _version(d)]
    try:
        import onnxruntime

        f.ort = str(onnxruntime.__version__)
        f.ort_providers = list(onnxruntime.get_available_providers())
    except ImportError:
        pass
    f.torch = _version("torch")
    return f


def _major(version: int | None) -> int | None:
    return None if version is None else version // 1000


def _fmt(version: int | None) -> str:
    return "absent" if version is None else f"{version // 1000}.{version % 1000 // 10}"


def decide(f: Findings, device: str | None = None) -> tuple[str, list[str]]:
    """The back-end ``auto`` would run on ``device`` here, and why (one reason per step)."""
    why: list[str] = []
    gpu_wanted = device is None or not str(device).lower().startswith("cpu")
    if len(f.ort_dists) > 1:
        why.append("onnxruntime and onnxruntime-gpu are both installed: they overwrite each other "
                   "(pip uninstall -y onnxruntime onnxruntime-gpu; then install one)")
    driver_major, cudart_major = _major(f.driver_cuda), _major(f.cudart)
    cuda_ok = bool(f.gpus) and cudart_major is not None and driver_major is not None \
        and cudart_major <= driver_major
    if gpu_wanted:
        if not f.gpus:
            why.append("no NVIDIA GPU/driver: the GPU back-ends cannot run")
        elif cudart_major is None:
            why.append("no CUDA runtime library (install glioedge[gpu-cu12] or [gpu-cu13])")
        elif not cuda_ok:
            why.append(f"the CUDA runtime is {_fmt(f.cudart)} but the driver supports CUDA up to "
                       f"{_fmt(f.driver_cuda)}: install the extra of the driver's CUDA major or "
                       "update the driver")
        if cuda_ok and f.tensorrt is not None and int(f.tensorrt.split(".")[0]) >= 10:
            why.append(f"TensorRT {f.tensorrt} and GPU {f.gpus[0][1]} "
                       f"(sm{f.gpus[0][2][0]}{f.gpus[0][2][1]}): the fastest back-end")
            return "tensorrt", why
        if f.tensorrt is None:
            why.append("tensorrt is not installed: no TensorRT back-end")
        elif int(f.tensorrt.split(".")[0]) < 10:
            why.append(f"TensorRT {f.tensorrt} is older than 10.0")
    if f.ort is None:
        why.append("onnxruntime is not installed")
        if f.torch:
            why.append("torch is installed: the torch back-end runs given a training checkpoint")
            return "torch (with --checkpoint)", why
        return "none", why
    if gpu_wanted and cuda_ok:
        if TRT_EP in f.ort_providers and f.tensorrt is None:
            why.append("onnxruntime lists the TensorRT provider, but TensorRT's libraries are "
                       "absent: the session will drop it")
        if CUDA_EP in f.ort_providers:
            if f.cudnn is None:
                why.append("onnxruntime lists the CUDA provider, but cuDNN is not found: the "
                           "session will drop it (pip install nvidia-cudnn-cu12 or -cu13)")
            else:
                why.append(f"onnxruntime {f.ort} with the CUDA provider (cuDNN {f.cudnn}) runs "
                           "model.fp16.onnx")
                return "onnxruntime-cuda", why
        else:
            why.append(f"onnxruntime {f.ort} has no CUDA provider (CPU wheel; install "
                       "onnxruntime-gpu instead of onnxruntime)")
    why.append(f"onnxruntime {f.ort} on the CPU runs model.onnx (FP32)")
    return "onnxruntime-cpu", why


def report(f: Findings, device: str | None = None) -> str:
    """Human-readable findings and decision."""
    lines = ["GPUs:"]
    lines += [f"  cuda:{i} {name} (compute capability {cc[0]}.{cc[1]})"
              for i, name, cc in f.gpus] or ["  none"]
    lines += [
        f"NVIDIA driver supports CUDA: {_fmt(f.driver_cuda)}",
        f"CUDA runtime (libcudart): {_fmt(f.cudart)}",
        f"cuDNN: {'absent' if f.cudnn is None else f.cudnn}",
        f"TensorRT: {f.tensorrt or 'absent'}",
        f"onnxruntime: {f.ort or 'absent'} ({', '.join(f.ort_dists) or 'no wheel'}); "
        f"providers: {', '.join(f.ort_providers) or '-'}",
        f"torch: {f.torch or 'absent'}",
    ]
    lines += [f"note: {n}" for n in f.notes]
    backend, why = decide(f, device)
    lines.append(f"auto picks: {backend}")
    lines += [f"  because: {w}" for w in why]
    return "\n".join(lines)
