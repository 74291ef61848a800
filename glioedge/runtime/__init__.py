"""What runs next to the scanner: a model bundle → DICOM-SEG, without PyTorch.

Python API::

    from glioedge.runtime import Segmenter, SegmenterConfig
    seg = Segmenter.from_bundle("bundle/", backend="auto")
    result = seg.segment_study("study_folder/")     # or a list of pydicom Datasets
    result.volumes_ml["WT"], result.seg, result.write(Path("out/"))

Modules: :mod:`.backends` (TensorRT, ONNX Runtime, PyTorch reference), :mod:`.inference`
(shared preprocessing → sliding window → probabilities on the reference grid), :mod:`.brain_mask`,
:mod:`.postprocess`, :mod:`.segmenter`, :mod:`.result` (+ :mod:`.qa_png`, :mod:`.sr`),
:mod:`.commands` (``glioedge segment``).
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
