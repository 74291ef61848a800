"""Parsing modality names (the names and channel orders live in :mod:`glioedge.vocabulary`).

Imports nothing heavier than the standard library (the runtime uses it).
"""

from __future__ import annotations

from collections.abc import Sequence

from glioedge.errors import ConfigError
from glioedge.vocabulary import DEFAULT_STUDENT_MODALITIES, TEACHER_MODALITIES, Modality

__all__ = [
    "DEFAULT_STUDENT_MODALITIES",
    "TEACHER_MODALITIES",
    "Modality",
    "parse_modalities",
]


_VALID = ", ".join(m.value for m in Modality)


def _one(name: str | Modality) -> Modality:
    if isinstance(name, Modality):
        return name
    key = str(name).strip().lower()
    try:
        return Modality(key)
    except ValueError:
        raise ConfigError(
            f"unknown modality {name!r}; valid modalities are: {_VALID}"
        ) from None


def parse_modalities(value: str | Sequence[str | Modality]) -> tuple[Modality, ...]:
    """Parse ``"flair,t1ce"`` or a sequence of names/enums into a tuple of :class:`Modality`.

    Args:
        value: comma-separated names or a sequence of names or :class:`Modality` members.

    Returns:
        The modalities in the order given.

    Raises:
        ConfigError: a name is unknown, a name appears twice, or the list is empty.
    """
    items = [p for p in value.split(",") if p.strip()] if isinstance(value, str) else list(value)
    mods = tuple(_one(p) for p in items)
    if not mods:
        raise ConfigError(f"no modality given; choose among: {_VALID}")
    seen: set[Modality] = set()
    dups = [m.value for m in mods if m in seen or seen.add(m)]  # type: ignore[func-returns-value]
    if dups:
        raise ConfigError(f"modality listed more than once: {', '.join(dups)} (in {value!r})")
    return mods
