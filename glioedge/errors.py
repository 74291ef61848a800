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


def lineage(exc: BaseException) -> list[str]:
    """The names of ``exc``'s class and its bases, most derived first: what a process sends of an
    error so that the receiver can raise the nearest class of this hierarchy (:func:`error_class`)."""
    return [cls.__name__ for cls in type(exc).__mro__]


def error_class(names: str | list[str] | tuple[str, ...]) -> type[GlioedgeError]:
    """The class of this module that an error with these class names maps to across a process
    boundary: the first of ``names`` (an error's :func:`lineage`) that names a class here, so a
    ``VerificationError`` stays one and a subclass defined elsewhere becomes its nearest base
    here; :class:`GlioedgeError` when none does (an error from outside the hierarchy)."""
    known = {name: obj for name, obj in globals().items()
             if isinstance(obj, type) and issubclass(obj, GlioedgeError)}
    for name in [names] if isinstance(names, str) else names:
        if name in known:
            return known[name]
    return GlioedgeError
