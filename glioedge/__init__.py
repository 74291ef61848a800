"""glioedge: single-stage knowledge-distilled brain-tumour segmentation, from training to the scanner.

Owns the package version. Its packages follow the path of a case (``DESIGN.md``, "Layout"):
``data`` → ``train`` → ``export`` → ``runtime`` ↔ ``dicom_io``, with ``metrics`` and
``evaluation`` beside them and ``synth`` for the demo, tests and benches, over a ground floor
that every part may import (``errors``, ``vocabulary``, ``_optional``, ``config_keys``,
``fileio``, ``bundle``, ``bundle_signing``). Every package opens with what it owns and a
"May import:" paragraph; the rule itself is ``tests/test_architecture.py`` (``ALLOWED``), see
``docs/CONVENTIONS.md``.

May import: nothing of glioedge.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("glioedge")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
