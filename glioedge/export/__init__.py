"""Export of the student: ONNX (FP32 and mixed FP16), verification, TensorRT, model bundle.

This package imports nothing heavy at import time; its modules load torch/onnx/onnxruntime
lazily through :func:`glioedge._optional.require`. The engine builder lives below both the export
and the runtime, in :mod:`glioedge.gpu.trt_build` (the runtime builds engines on first use and
never imports this package).
"""
