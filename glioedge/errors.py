"""One exception hierarchy for glioedge.

Every message says what was wrong, where (case, file, series, tag) and what was expected.
Every command line (``glioedge``, ``python -m glioedge.runtime.daemon``) maps them to exit codes
with :func:`exit_code`: a :class:`CheckFailedError` is 1 (a check ran and did not hold), every
other :class:`GlioedgeError` is 2 (bad input or configuration).
"""

from __future__ import annotations

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT = 0, 1, 2


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


def exit_code(exc: BaseException) -> int:
    """The exit status for an error a sub-command raised: 1 for a failed check, else 2 (an
    ``OSError`` is a path that cannot be read or written: bad input or configuration)."""
    return EXIT_CHECK_FAILED if isinstance(exc, CheckFailedError) else EXIT_BAD_INPUT


def exit_status(code: int | None) -> int:
    """A sub-command's own return value as an exit status: 0, 1 or 2 (anything else is 1)."""
    code = int(code or 0)
    return code if code in (EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT) else EXIT_CHECK_FAILED
