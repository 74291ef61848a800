"""One check for every ``from_dict`` of a config dataclass: unknown keys are named, never ignored."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from glioedge.errors import ConfigError


def reject_unknown_keys(cls: type, data: Mapping[str, Any], what: str | None = None) -> None:
    """Raise unless every key of ``data`` is a field of the dataclass ``cls``.

    Raises:
        ConfigError: names the unknown keys and lists the known ones.
    """
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{what or cls.__name__}: unknown keys {unknown}; known: {sorted(known)}")
