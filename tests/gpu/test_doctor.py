"""``glioedge doctor``: its reasoning on made-up machines, and a real run on this one."""

from __future__ import annotations

import pytest

from glioedge.cli import main
from glioedge.runtime.backends.ort_providers import CPU_EP, CUDA_EP, TRT_EP
from glioedge.runtime.doctor import Findings, decide, probe, report

H200 = [(0, "NVIDIA H200", (9, 0))]


def box(**changes: object) -> Findings:
    """An H200 with a CUDA 13 driver, the CUDA 12.9 runtime, cuDNN and onnxruntime-gpu."""
    base = {"gpus": H200, "driver_cuda": 13000, "cudart": 12090, "cudnn": 91000, "tensorrt": None,
            "ort": "1.22.0", "ort_dists": ["onnxruntime-gpu"],
            "ort_providers": [TRT_EP, CUDA_EP, CPU_EP]}
    return Findings(**{**base, **changes})  # type: ignore[arg-type]


def test_tensorrt_is_picked_when_it_and_a_gpu_are_there() -> None:
    backend, why = decide(box(tensorrt="10.13.0"))
    assert backend == "tensorrt" and "sm90" in why[-1]


def test_listed_tensorrt_provider_without_tensorrt_falls_to_the_cuda_provider() -> None:
    backend, why = decide(box())
    assert backend == "onnxruntime-cuda"
    assert any("will drop it" in w and "TensorRT" in w for w in why)


def test_cuda_provider_without_cudnn_ends_on_the_cpu() -> None:
    backend, why = decide(box(cudnn=None))
    assert backend == "onnxruntime-cpu" and any("cuDNN is not found" in w for w in why)


def test_runtime_newer_than_the_driver_is_explained() -> None:
    backend, why = decide(box(driver_cuda=12040, cudart=13000, tensorrt="10.13.0"))
    assert backend == "onnxruntime-cpu"
    assert any("driver supports CUDA up to 12.4" in w for w in why)


def test_cpu_wheel_and_both_wheels_are_named() -> None:
    backend, why = decide(box(ort_dists=["onnxruntime"], ort_providers=[CPU_EP]))
    assert backend == "onnxruntime-cpu" and any("CPU wheel" in w for w in why)
    _, why = decide(box(ort_dists=["onnxruntime", "onnxruntime-gpu"]))
    assert "both installed" in why[0]


def test_no_gpu_and_cpu_device() -> None:
    assert decide(box(gpus=[], driver_cuda=None))[0] == "onnxruntime-cpu"
    assert decide(box(tensorrt="10.13.0"), device="cpu")[0] == "onnxruntime-cpu"
    assert decide(Findings(torch="2.11"))[0] == "torch (with --checkpoint)"
    assert decide(Findings())[0] == "none"


def test_old_tensorrt_is_not_used() -> None:
    backend, why = decide(box(tensorrt="8.6.1"))
    assert backend == "onnxruntime-cuda" and any("older than 10.0" in w for w in why)


def test_doctor_runs_here(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "auto picks:" in out and "onnxruntime" in out
    assert report(probe()).splitlines()[0] == "GPUs:"
