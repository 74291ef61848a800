"""Export of the student: ONNX (FP32 and mixed FP16), verification, TensorRT, model bundle.

This package imports nothing heavy at import time. ``glioedge.export.tensorrt`` needs neither
torch nor onnx (only TensorRT), so the runtime can build an engine on first use with it; the
other modules load torch/onnx/onnxruntime lazily through :func:`glioedge._optional.require`.
"""
