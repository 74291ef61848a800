"""DESIGN.md's rule: the runtime never imports the export; what both need lives in neutral
modules (``glioedge.gpu``, ``glioedge.brain_mask_spec``)."""

from __future__ import annotations

import subprocess
import sys


def test_runtime_modules_do_not_import_the_export() -> None:
    code = (
        "import sys\n"
        "import glioedge.runtime.segmenter, glioedge.runtime.backends\n"
        "import glioedge.runtime.backends.tensorrt_backend, glioedge.runtime.backends.ort_backend\n"
        "import glioedge.runtime.skullstrip, glioedge.runtime.doctor\n"
        "from glioedge.runtime.backends import tensorrt_reason\n"
        "tensorrt_reason()\n"
        "bad = sorted(m for m in sys.modules if m.startswith('glioedge.export'))\n"
        "assert not bad, bad\n"
        "assert 'torch' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]


def test_export_reads_the_brain_mask_spec_from_the_neutral_module() -> None:
    from glioedge.brain_mask_spec import BrainMaskSpec
    from glioedge.runtime.skullstrip.spec import BrainMaskSpec as RuntimeSpec

    assert RuntimeSpec is BrainMaskSpec
