"""A site's segment mapping file: how its SEG segments (names or codes) map to NCR, ED and ET.

JSON, for example::

    {"segments": {"Necrosis": "NCR", "Oedem": "ED", "SCT:108369006": "ET", "Brain": "ignore"}}

A key is a segment label (compared without regard to case) or ``SCHEME:VALUE`` of the segment's
segmented property type; a value is ``NCR``, ``ED``, ``ET`` or ``ignore`` (the segment is left
out). Segments not named fall back to glioedge's own codes and labels; any other segment is an
error that names it.
"""

from __future__ import annotations

import json
from pathlib import Path

from glioedge.errors import ConfigError
from glioedge.vocabulary import BACKGROUND, CLASS_NAMES

__all__ = ["load_segment_map"]

_VALUES = {name.upper(): number for number, name in enumerate(CLASS_NAMES) if number} | {"IGNORE": BACKGROUND}


def load_segment_map(path: Path) -> dict[str, int]:
    """Segment label or ``SCHEME:VALUE`` → internal class (0 = ignore).

    Raises:
        ConfigError: the file is missing, not JSON, or holds a key or value that is not allowed.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--segment-map {path}: cannot be read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--segment-map {path}: not valid JSON: {exc}") from exc
    segments = data.get("segments") if isinstance(data, dict) else None
    if not isinstance(segments, dict) or not segments:
        raise ConfigError(f'--segment-map {path}: expected {{"segments": {{"<label or SCHEME:CODE>": '
                          f'"NCR|ED|ET|ignore", ...}}}}')
    out: dict[str, int] = {}
    for key, value in segments.items():
        cls = _VALUES.get(str(value).upper()) if isinstance(value, str) else None
        if not isinstance(key, str) or not key.strip() or cls is None:
            raise ConfigError(f"--segment-map {path}: segment {key!r} → {value!r}: expected a "
                              f"non-empty label or SCHEME:CODE mapped to NCR, ED, ET or ignore")
        out[key.strip()] = cls
    return out
