"""Structured logs: one JSON object per line, carrying UIDs and never patient identity.

Fields come from ``extra={...}`` of the logging call. :class:`PhiFilter` refuses keys that name
patient attributes (their values are replaced by ``"[refused]"`` and the record is tagged
``phi_refused``), so that a careless ``extra={"patient_name": ...}`` cannot reach a log file.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any, TextIO

#: Keys (lower-cased, without ``_``) that may hold protected health information.
PHI_KEYS = frozenset({
    "patientname", "patientid", "patientbirthdate", "birthdate", "dob", "otherpatientids",
    "otherpatientnames", "patientaddress", "patientmothersbirthname", "patientbirthname",
    "accessionnumber", "patienttelephonenumbers", "name", "mrn",
})

#: Attributes every LogRecord has; everything else came through ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _is_phi(key: str) -> bool:
    return key.lower().replace("_", "").replace("-", "") in PHI_KEYS


class PhiFilter(logging.Filter):
    """Replace the value of any PHI-named ``extra`` key by ``"[refused]"``."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub the record; never drops it."""
        refused = [k for k in vars(record) if k not in _STANDARD and _is_phi(k)]
        for key in refused:
            setattr(record, key, "[refused]")
        if refused:
            record.phi_refused = sorted(refused)
        return True


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line: time, level, logger, message and the ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Serialise; values that JSON does not know become strings."""
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = "[refused]" if _is_phi(key) else value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure(level: str = "INFO", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Send glioedge's logs to ``stream`` (stderr) as JSON lines or plain text, PHI filter on.

    Replaces handlers previously installed by this function, so it can be called again.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(PhiFilter())
    handler.set_name("glioedge-daemon")
    for name in ("glioedge", "pynetdicom"):
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == "glioedge-daemon"]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.propagate = False
    logging.getLogger("glioedge").setLevel(level.upper())
    logging.getLogger("pynetdicom").setLevel("WARNING")
