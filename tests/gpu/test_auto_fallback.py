"""``backend = auto`` on a GPU box falls back from TensorRT instead of falling over (issue 23,
item 9): whatever stops the TensorRT back-end from opening at start-up is logged and the next
back-end is opened. No GPU here: TensorRT is declared usable and its opening fails as it does on
a site box."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from glioedge.errors import BackendError, ConfigError
from glioedge.runtime import backends as B
from glioedge.runtime.backends import ort_backend, tensorrt_backend


def _decode_error() -> json.JSONDecodeError:
    try:
        json.loads('{"sha256": "ab')  # a truncated sidecar
    except json.JSONDecodeError as exc:
        return exc
    raise AssertionError("unreachable")


@pytest.mark.parametrize("failure", [
    ConfigError("TensorRT 10.13: an FP16 engine is built strongly typed from model.fp16.onnx, which "
                "this bundle lacks"),
    PermissionError(13, "Permission denied", "/root/.cache/glioedge/engines"),  # ProtectHome=
    _decode_error(),
    BackendError("TensorRT 10.13 failed to build an engine from model.fp16.onnx"),
], ids=["no-fp16-model", "protect-home", "truncated-sidecar", "build-failed"])
def test_auto_falls_back_from_tensorrt_with_the_reason_logged(
    failure: Exception, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    opened: list[dict[str, Any]] = []

    def tensorrt_fails(*args: Any, **kwargs: Any) -> Any:
        raise failure

    def ort(bundle: Any, device: Any, **kwargs: Any) -> Any:
        opened.append(kwargs)
        return SimpleNamespace(name="onnxruntime-cuda-fp16")

    monkeypatch.setattr(B, "tensorrt_reason", lambda device=None: None)  # TensorRT + GPU present
    monkeypatch.setattr(B, "_ort_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(tensorrt_backend.TensorRTBackend, "from_bundle", tensorrt_fails)
    monkeypatch.setattr(ort_backend.OrtBackend, "from_bundle", ort)
    with caplog.at_level(logging.INFO, logger="glioedge.runtime.backends"):
        backend = B.select_backend(SimpleNamespace(), "auto", None, cache_dir=tmp_path / "engines")
    assert backend.name == "onnxruntime-cuda-fp16"
    assert opened == [{"batch_size": 2, "engine_cache": tmp_path / "engines"}]
    assert type(failure).__name__ in caplog.text and "falling back" in caplog.text
    assert f"tensorrt: {type(failure).__name__}" in caplog.text  # in the "backend chosen" line


def test_explicit_tensorrt_still_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    def tensorrt_fails(*args: Any, **kwargs: Any) -> Any:
        raise BackendError("the engine cache /root/.cache/glioedge/engines is not writable")

    monkeypatch.setattr(B, "tensorrt_reason", lambda device=None: None)
    monkeypatch.setattr(tensorrt_backend.TensorRTBackend, "from_bundle", tensorrt_fails)
    with pytest.raises(BackendError, match="not writable"):
        B.select_backend(SimpleNamespace(), "tensorrt", "cuda:0")
