"""Import optional heavy dependencies through one place that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from glioedge.errors import MissingDependencyError

#: module name -> how to get it
_HOW_TO_INSTALL: dict[str, str] = {
    "torch": "pip install 'glioedge[train]' torch==2.13.0 (CPU) or a CUDA build of torch",
    "safetensors": "pip install 'glioedge[train]'",
    "dynamic_network_architectures": (
        "pip install --no-deps dynamic-network-architectures==0.4.4 "
        "(--no-deps: its timm requirement would replace torch; see README)"
    ),
    "onnx": "pip install 'glioedge[export]'",
    "onnxruntime": "pip install 'glioedge[runtime]' (or onnxruntime-gpu on a CUDA box)",
    "tensorrt": "pip install tensorrt (NVIDIA GPU with a matching driver required)",
    "watchdog": "pip install 'glioedge[runtime]'",
    "pynetdicom": "pip install 'glioedge[runtime]'",
    "dicomweb_client": "pip install 'glioedge[runtime]'",
    "prometheus_client": "pip install 'glioedge[runtime]'",
    "matplotlib": "pip install 'glioedge[evaluate]' (or 'glioedge[train]')",
    "tqdm": "pip install 'glioedge[train]'",
}


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` saying how to install it.

    Raises:
        MissingDependencyError: the module is not importable.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = _HOW_TO_INSTALL.get(module.split(".", maxsplit=1)[0], f"pip install {module}")
        raise MissingDependencyError(
            f"{purpose} needs the Python package '{module}', which is not installed: {hint}"
        ) from exc
