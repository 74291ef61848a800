"""One exception hierarchy for glioedge.

Every message says what was wrong, where (case, file, series, tag) and what was expected.
The command line maps them to exit codes (``glioedge.cli.exit_code``): a
:class:`CheckFailedError` is 1 (a check ran and did not hold), every other :class:`GlioedgeError`
is 2 (bad input or configuration).
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


class CheckFailedError(GlioedgeError):
    """A check ran and did not hold: export parity, a bundle's checksums or signature, a job that
    failed or was quarantined. Exit code 1, where bad input or configuration is 2."""


class VerificationError(CheckFailedError, ModelError):
    """A model or bundle failed verification (parity with PyTorch, checksums, signature)."""


class MissingDependencyError(GlioedgeError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""
