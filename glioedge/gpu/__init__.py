"""GPU plumbing shared by the export and the runtime, torch-free and onnx-free.

:mod:`.cuda` reaches the CUDA driver and runtime (device index, compute capability, device and
pinned memory, streams); :mod:`.trt_build` builds TensorRT engines (at export, and by the runtime
on first use). Both ``glioedge.export`` and ``glioedge.runtime`` import from here, so the runtime
never imports the export.
"""
