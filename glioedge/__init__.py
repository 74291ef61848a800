"""glioedge: single-stage knowledge-distilled brain-tumour segmentation, from training to the scanner."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("glioedge")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
