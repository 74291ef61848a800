"""What runs next to the scanner: a model bundle → DICOM-SEG, without PyTorch.

Python API::

    from glioedge.runtime import Segmenter, SegmenterConfig
    seg = Segmenter.from_bundle("bundle/", backend="auto")
    result = seg.segment_study("study_folder/")     # or a list of pydicom Datasets
    result.volumes_ml["WT"], result.seg, result.write(Path("out/"))

Modules: :mod:`.backends` (TensorRT, ONNX Runtime, PyTorch reference), :mod:`.inference`
(shared preprocessing → sliding window → probabilities on the reference grid), :mod:`.brain_mask`,
:mod:`.postprocess`, :mod:`.segmenter`, :mod:`.result` (+ :mod:`.qa_png`, :mod:`.sr`),
:mod:`.commands` (``glioedge segment``); :mod:`.skullstrip` (brain extraction), :mod:`.quality`
(the per-case verdict), :mod:`.daemon` (``glioedge watch`` / ``receive``).

May import: the ground floor, ``dicom_io``, ``data`` (only its shared preprocessing, sliding
window, labels, modalities and geometry) and the neutral modules (``tests/test_architecture.py``).
Never torch at import time.

One documented exception: the optional PyTorch reference back-end builds its network from a
training checkpoint (:mod:`glioedge.runtime.backends.torch_backend` imports ``glioedge.train``).
"""

from glioedge.runtime.backends import Backend, BackendName, available_backends, select_backend
from glioedge.runtime.brain_mask import BrainMaskMode
from glioedge.runtime.result import Result
from glioedge.runtime.segmenter import Segmenter, SegmenterConfig

__all__ = [
    "Backend",
    "BackendName",
    "BrainMaskMode",
    "Result",
    "Segmenter",
    "SegmenterConfig",
    "available_backends",
    "select_backend",
]
