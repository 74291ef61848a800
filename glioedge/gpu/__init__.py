"""GPU plumbing shared by the export and the runtime, torch-free and onnx-free.

:mod:`.cuda` reaches the CUDA driver and runtime (device index, name, compute capability, device
and pinned memory, streams) — the one way glioedge reaches CUDA outside training;
:mod:`.trt_build` builds TensorRT engines (at export, and by the runtime on first use);
:mod:`.trt_run` runs an engine (the runtime's TensorRT back-end and the export's parity check);
:mod:`.engine_trust` seals and checks the trust records of engines built on the box. Both
``glioedge.export`` and ``glioedge.runtime`` import from here, so the runtime never imports the
export.

May import: the ground floor, ``data``, ``dicom_io`` (a neutral component in
``tests/test_architecture.py``; in practice only ``bundle``, ``fileio``, ``errors`` and
``_optional``).
"""
