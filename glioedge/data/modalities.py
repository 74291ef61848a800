"""MR modality vocabulary: names, the teacher's and the student's default channel order.

Imports nothing heavier than the standard library (the runtime uses it).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from glioedge.errors import ConfigError

__all__ = [
    "DEFAULT_STUDENT_MODALITIES",
    "TEACHER_MODALITIES",
    "Modality",
    "parse_modalities",
]


class Modality(str, Enum):
    """The four BraTS MR sequences."""

    T1 = "t1"
    T2 = "t2"
    FLAIR = "flair"
    T1CE = "t1ce"

    def __str__(self) -> str:
        return self.value


#: Channel order of the teacher network (all four sequences).
TEACHER_MODALITIES: tuple[Modality, ...] = (
    Modality.T1,
    Modality.T2,
    Modality.FLAIR,
    Modality.T1CE,
)
#: Default channel order of the student network.
DEFAULT_STUDENT_MODALITIES: tuple[Modality, ...] = (Modality.FLAIR, Modality.T1CE)

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
