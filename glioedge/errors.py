"""One exception hierarchy for glioedge.

Every message says what was wrong, where (case, file, series, tag) and what was expected.
"""

from __future__ import annotations


class GlioedgeError(Exception):
    """Base class of every error glioedge raises on purpose."""


class InputError(GlioedgeError, ValueError):
    """Bad or incomplete input: a case, a file, a DICOM series or a tag is not what was expected."""


class ModelError(GlioedgeError):
    """A checkpoint or model bundle is missing, inconsistent or has been tampered with."""


class BackendError(GlioedgeError, RuntimeError):
    """An inference back-end is unavailable or failed; the message says what to install."""


class ConfigError(GlioedgeError, ValueError):
    """A configuration value is invalid; the message names the key and the accepted values."""


class MissingDependencyError(GlioedgeError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""
