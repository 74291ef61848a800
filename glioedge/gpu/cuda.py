"""The few CUDA calls glioedge needs without torch: device index, compute capability, device and
pinned host memory, copies and a stream.

The CUDA *runtime* library comes from NVIDIA's wheels: ``cuda.pathfinder`` (package
``cuda-pathfinder``, part of ``cuda-python``) finds it wherever NVIDIA installs it; without it the
two wheel layouts are searched on ``sys.path``:

* CUDA 12: ``nvidia/cuda_runtime/lib/libcudart.so.12`` (wheel ``nvidia-cuda-runtime-cu12``);
* CUDA 13: ``nvidia/cu13/lib/libcudart.so.13`` (wheel ``nvidia-cuda-runtime`` 13.x),

then the system's loader (a CUDA toolkit). The compute capability is read through the *driver*
(``libcuda``, installed with the NVIDIA driver), which needs no runtime library at all.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from collections.abc import Iterable
from pathlib import Path

from glioedge.errors import BackendError

logger = logging.getLogger(__name__)

__all__ = [
    "CudaRuntime",
    "compute_capability",
    "cudart_candidates",
    "device_index",
    "device_name",
    "devices",
    "driver_version",
    "load_cudart",
    "runtime_version",
]

H2D, D2H = 1, 2  # cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost
_CC_MAJOR, _CC_MINOR = 75, 76  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR
_STREAM_NON_BLOCKING = 1

#: (sub-directory of a site-packages folder, file patterns), newest CUDA first.
WHEEL_LAYOUTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("nvidia/cu13/lib", ("libcudart.so.13*",)),
    ("nvidia/cu13/bin", ("cudart64_13*.dll",)),
    ("nvidia/cuda_runtime/lib", ("libcudart.so.12*",)),
    ("nvidia/cuda_runtime/bin", ("cudart64_12*.dll",)),
)
SYSTEM_NAMES = ("libcudart.so.13", "libcudart.so.12", "libcudart.so", "cudart64_13.dll", "cudart64_12.dll")


def device_index(device: str | int | None) -> int:
    """The CUDA ordinal of ``"cuda"``, ``"cuda:N"``, ``N`` or ``None`` (0).

    Raises:
        BackendError: not a CUDA device string.
    """
    if device is None:
        return 0
    if isinstance(device, int):
        return device
    text = str(device).strip().lower()
    if text == "cuda":
        return 0
    if text.startswith("cuda:") and text[5:].isdigit():
        return int(text[5:])
    raise BackendError(f"device {device!r} is not a CUDA device (expected 'cuda' or 'cuda:N')")


def _driver() -> ctypes.CDLL:
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise BackendError("no NVIDIA driver (libcuda) found: this needs an NVIDIA GPU and its driver")


def compute_capability(device: int = 0) -> tuple[int, int]:
    """Compute capability of CUDA device ``device``, read through the driver API.

    Raises:
        BackendError: no NVIDIA driver, or no such device.
    """
    lib = _driver()
    dev, major, minor = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    if lib.cuInit(0) != 0:
        raise BackendError("the NVIDIA driver is present but cuInit failed: no usable GPU")
    if lib.cuDeviceGet(ctypes.byref(dev), int(device)) != 0:
        raise BackendError(f"CUDA device {device} does not exist")
    lib.cuDeviceGetAttribute(ctypes.byref(major), _CC_MAJOR, dev)
    lib.cuDeviceGetAttribute(ctypes.byref(minor), _CC_MINOR, dev)
    return int(major.value), int(minor.value)


def driver_version() -> int | None:
    """The CUDA version the driver supports (e.g. 13000 for 13.0), or ``None`` without a driver."""
    try:
        lib = _driver()
    except BackendError:
        return None
    v = ctypes.c_int()
    return int(v.value) if lib.cuDriverGetVersion(ctypes.byref(v)) == 0 else None


def cudart_candidates(search_dirs: Iterable[str | Path] | None = None) -> list[str]:
    """Files of the CUDA runtime library in NVIDIA's wheel layouts under ``search_dirs``
    (default ``sys.path``), CUDA 13 before 12, then the system names for the loader."""
    found: list[str] = []
    for root in search_dirs if search_dirs is not None else sys.path:
        base = Path(root)
        for sub, patterns in WHEEL_LAYOUTS:
            folder = base / sub
            if folder.is_dir():
                for pattern in patterns:
                    found += sorted(str(p) for p in folder.glob(pattern))
    return [*dict.fromkeys(found), *SYSTEM_NAMES]


def _pathfinder_cudart() -> str | None:
    try:
        from cuda.pathfinder import load_nvidia_dynamic_lib  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        loaded = load_nvidia_dynamic_lib("cudart")
    except Exception as exc:  # DynamicLibNotFoundError and friends
        logger.debug("cuda.pathfinder found no cudart: %s", exc)
        return None
    return getattr(loaded, "abs_path", None)


def load_cudart(search_dirs: Iterable[str | Path] | None = None) -> ctypes.CDLL:
    """The CUDA runtime library (see the module docstring for where it is looked for).

    Raises:
        BackendError: none found.
    """
    names = cudart_candidates(search_dirs)
    first = _pathfinder_cudart() if search_dirs is None else None
    for name in ([first] if first else []) + names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        logger.debug("CUDA runtime: %s", name)
        return lib
    raise BackendError(
        "the CUDA runtime library (libcudart) was not found; install glioedge[gpu-cu12] or "
        "glioedge[gpu-cu13] (they bring nvidia-cuda-runtime and cuda-python), or a CUDA toolkit"
    )


def runtime_version() -> int:
    """Version of the CUDA runtime library found (e.g. 12090 for 12.9).

    Raises:
        BackendError: no runtime library, or it fails.
    """
    lib = load_cudart()
    v = ctypes.c_int()
    if lib.cudaRuntimeGetVersion(ctypes.byref(v)) != 0:
        raise BackendError("cudaRuntimeGetVersion failed")
    return int(v.value)


class CudaRuntime:
    """Device memory, pinned host memory, async copies and one non-blocking stream on one GPU.

    Every call first makes ``device`` current for the calling thread (CUDA's current device is
    per thread, and the daemon runs inference in a worker thread).

    Raises:
        BackendError: the library is missing or a call fails (with CUDA's error text).
    """

    def __init__(self, device: int = 0, lib: ctypes.CDLL | None = None) -> None:
        self.device = int(device)
        self.lib = lib or load_cudart()
        self._typed()
        self.use()
        self.stream = ctypes.c_void_p()
        self._check(self.lib.cudaStreamCreateWithFlags(ctypes.byref(self.stream), _STREAM_NON_BLOCKING),
                    "cudaStreamCreateWithFlags")

    def _typed(self) -> None:
        lib, vp, sz, i = self.lib, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
        for name, args in (("cudaSetDevice", [i]), ("cudaMalloc", [ctypes.POINTER(vp), sz]),
                           ("cudaMallocHost", [ctypes.POINTER(vp), sz]), ("cudaFree", [vp]),
                           ("cudaFreeHost", [vp]), ("cudaMemcpyAsync", [vp, vp, sz, i, vp]),
                           ("cudaStreamCreateWithFlags", [ctypes.POINTER(vp), ctypes.c_uint]),
                           ("cudaStreamSynchronize", [vp]), ("cudaStreamDestroy", [vp]),
                           ("cudaRuntimeGetVersion", [ctypes.POINTER(i)])):
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = args, i
        lib.cudaGetErrorString.argtypes, lib.cudaGetErrorString.restype = [i], ctypes.c_char_p

    def _check(self, code: int, what: str) -> None:
        if code != 0:
            text = self.lib.cudaGetErrorString(code)
            raise BackendError(f"CUDA runtime on device {self.device}: {what} failed "
                               f"({code}: {text.decode() if text else '?'})")

    def use(self) -> None:
        """Make this runtime's device current for the calling thread."""
        self._check(self.lib.cudaSetDevice(self.device), f"cudaSetDevice({self.device})")

    def version(self) -> int:
        v = ctypes.c_int()
        self._check(self.lib.cudaRuntimeGetVersion(ctypes.byref(v)), "cudaRuntimeGetVersion")
        return int(v.value)

    def malloc(self, nbytes: int) -> int:
        ptr = ctypes.c_void_p()
        self._check(self.lib.cudaMalloc(ctypes.byref(ptr), nbytes), f"cudaMalloc({nbytes})")
        return int(ptr.value or 0)

    def malloc_host(self, nbytes: int) -> int:
        """Page-locked host memory (so that async copies are truly asynchronous)."""
        ptr = ctypes.c_void_p()
        self._check(self.lib.cudaMallocHost(ctypes.byref(ptr), nbytes), f"cudaMallocHost({nbytes})")
        return int(ptr.value or 0)

    def free(self, ptr: int) -> None:
        if ptr:
            self.lib.cudaFree(ptr)

    def free_host(self, ptr: int) -> None:
        if ptr:
            self.lib.cudaFreeHost(ptr)

    def copy_async(self, dst: int, src: int, nbytes: int, kind: int) -> None:
        self._check(self.lib.cudaMemcpyAsync(dst, src, nbytes, kind, self.stream), "cudaMemcpyAsync")

    def sync(self) -> None:
        self._check(self.lib.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")

    @property
    def stream_handle(self) -> int:
        """The stream as the integer TensorRT's ``execute_async_v3`` takes."""
        return int(self.stream.value or 0)

    def close(self) -> None:
        if self.stream:
            self.lib.cudaStreamDestroy(self.stream)
            self.stream = ctypes.c_void_p()


def devices() -> list[tuple[int, str, tuple[int, int]]]:
    """``(index, name, compute capability)`` of every CUDA device the driver sees (``[]``: none).

    Raises:
        BackendError: no NVIDIA driver.
    """
    lib = _driver()
    if lib.cuInit(0) != 0:
        return []
    count = ctypes.c_int()
    if lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return []
    return [(i, device_name(i), compute_capability(i)) for i in range(count.value)]


def device_name(device: int = 0) -> str:
    """The marketing name of CUDA device ``device`` (e.g. ``NVIDIA A10``), read through the driver.

    Two GPUs of one compute capability (an A100 and an A30 are both sm80) are different
    devices to TensorRT: an engine built with hardware compatibility NONE is tuned for one.

    Raises:
        BackendError: no NVIDIA driver, or no such device.
    """
    lib = _driver()
    dev = ctypes.c_int()
    if lib.cuInit(0) != 0:
        raise BackendError("the NVIDIA driver is present but cuInit failed: no usable GPU")
    if lib.cuDeviceGet(ctypes.byref(dev), int(device)) != 0:
        raise BackendError(f"CUDA device {device} does not exist")
    name = ctypes.create_string_buffer(256)
    lib.cuDeviceGetName(name, 256, dev)
    return name.value.decode(errors="replace").strip()
