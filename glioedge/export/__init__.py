"""Export of the student: ONNX (FP32 and mixed FP16), verification, TensorRT, model bundle.

This package imports nothing heavy at import time; its modules load torch/onnx/onnxruntime
lazily through :func:`glioedge._optional.require`. The engine builder lives below both the export
and the runtime, in :mod:`glioedge.gpu.trt_build` (the runtime builds engines on first use and
never imports this package).

Owns the student's ONNX export (:mod:`.onnx_export`, :mod:`.fp16`), its verification against
PyTorch (:mod:`.verify`), engine building at export (:mod:`.tensorrt`), the brain-mask model's
conversion (:mod:`.brain_mask_export`), the bundle's quality block, Triton repositories and
``glioedge export`` / ``glioedge bundle`` (:mod:`.pipeline`, :mod:`.commands`).

May import: the ground floor, ``train``, ``data``, ``dicom_io`` and the neutral modules
(``tests/test_architecture.py``).
"""
