"""Structured logs: one JSON object per line, carrying UIDs and never patient identity.

Fields come from ``extra={...}`` of the logging call. :class:`PhiFilter` does two things:

* it refuses keys that name patient attributes (their values become ``"[refused]"`` and the record
  is tagged ``phi_refused``), so that a careless ``extra={"patient_name": ...}`` cannot reach a log;
* it replaces every *value* of patient identity seen in the studies read (patient name and its
  components, patient ID, birth date, accession number: :func:`remember_phi`) and every path
  below a registered private folder (the inbox, whose folder names often carry patient names:
  :func:`register_private_folder`) wherever it appears: message, fields, exception text.

:func:`configure` puts one handler on the root logger, so every line on stderr is JSON,
third-party lines (highdicom, urllib3, pynetdicom, ``warnings``) included; third-party loggers
are held at WARNING unless the level asked for is DEBUG.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import sys
import threading
from collections import OrderedDict
from typing import Any, TextIO

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

#: Keys (lower-cased, without ``_``) that may hold protected health information.
PHI_KEYS = frozenset({
    "patientname", "patientid", "patientbirthdate", "birthdate", "dob", "otherpatientids",
    "otherpatientnames", "patientaddress", "patientmothersbirthname", "patientbirthname",
    "accessionnumber", "patienttelephonenumbers", "name", "mrn",
})
#: DICOM attributes whose values are remembered and scrubbed from every log line.
PHI_ATTRIBUTES = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber",
                  "OtherPatientIDs", "OtherPatientNames", "PatientBirthName",
                  "PatientMotherBirthName", "PatientAddress", "PatientTelephoneNumbers")
_PERSON_NAMES = frozenset({"PatientName", "OtherPatientNames", "PatientBirthName",
                           "PatientMotherBirthName"})
#: What a scrubbed value becomes.
REDACTED = "[phi]"
#: Values shorter than this are not scrubbed (a 2-character ID would shred every number).
MIN_VALUE_LENGTH = 3

#: Attributes every LogRecord has; everything else came through ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_HANDLER_NAME = "glioedge-daemon"


def _is_phi(key: str) -> bool:
    return key.lower().replace("_", "").replace("-", "") in PHI_KEYS


class _Scrubber:
    """The process's known patient values and private folders (thread-safe, bounded)."""

    def __init__(self, capacity: int = 50_000) -> None:
        self._lock = threading.Lock()
        self._values: OrderedDict[str, None] = OrderedDict()
        self._folders: list[str] = []
        self._capacity = capacity
        self._pattern: re.Pattern[str] | None = None

    def add_values(self, values: list[str]) -> None:
        with self._lock:
            changed = False
            for raw in values:
                value = raw.strip()
                if len(value) < MIN_VALUE_LENGTH:
                    continue
                if value in self._values:
                    self._values.move_to_end(value)
                    continue
                self._values[value] = None
                changed = True
            while len(self._values) > self._capacity:
                self._values.popitem(last=False)
            if changed:
                self._pattern = None

    def add_folder(self, folder: str) -> None:
        folder = folder.rstrip("/")
        with self._lock:
            if folder and folder not in self._folders:
                self._folders.append(folder)
                self._pattern = None

    def _compiled(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and (self._values or self._folders):
                folders = [re.escape(f) + r"/[^\s'\",;:()\[\]{}]*" for f in
                           sorted(self._folders, key=len, reverse=True)]
                values = [re.escape(v) for v in sorted(self._values, key=len, reverse=True)]
                self._pattern = re.compile("|".join([*folders, *values]))
            return self._pattern

    def scrub(self, text: str) -> str:
        pattern = self._compiled()
        if pattern is None or not text:
            return text
        folders = tuple(f + "/" for f in self._folders)

        def replace(match: re.Match[str]) -> str:
            found = match.group(0)
            if found.startswith(folders):
                digest = hashlib.sha256(found.encode()).hexdigest()[:12]
                return f"<inbox file {digest}>"
            return REDACTED

        return pattern.sub(replace, text)


_SCRUBBER = _Scrubber()


def remember_phi(ds: Dataset) -> None:
    """Remember the patient identity values of ``ds`` so that no log line carries them.

    Each value is kept as it is, upper-cased, lower-cased and title-cased (viewer exports change
    the case of folder names); person names also by component (family name, given names), so
    that ``DOE^JOHN`` is caught in a folder named ``Doe John_12345``.
    """
    values: list[str] = []
    for keyword in PHI_ATTRIBUTES:
        value = ds.get(keyword)
        if value is None or value == "":
            continue
        items = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
        for item in items:
            text = str(item).strip()
            parts = [text]
            if keyword in _PERSON_NAMES:
                parts += [p for p in re.split(r"[\^=\s,]+", text) if p]
            for part in parts:
                values += [part, part.upper(), part.lower(), part.title()]
    _SCRUBBER.add_values(values)


def register_private_folder(folder: str) -> None:
    """Paths below ``folder`` are replaced by ``<inbox file HASH>`` in every log line."""
    _SCRUBBER.add_folder(str(folder))


def scrub(text: str) -> str:
    """``text`` without remembered patient values or private paths."""
    return _SCRUBBER.scrub(text)


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    text = json.dumps(value, default=str)
    cleaned = scrub(text)
    return value if cleaned == text else json.loads(cleaned)


class PhiFilter(logging.Filter):
    """Refuse PHI-named ``extra`` keys and scrub remembered patient values everywhere."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub the record; never drops it."""
        refused = [k for k in vars(record) if k not in _STANDARD and _is_phi(k)]
        for key in refused:
            setattr(record, key, "[refused]")
        if refused:
            record.phi_refused = sorted(refused)
        message = record.getMessage()
        record.msg, record.args = scrub(message), None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and not key.startswith("_"):
                setattr(record, key, _scrub_value(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
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
        if record.exc_text or record.exc_info:
            out["exception"] = record.exc_text or self.formatException(record.exc_info)
        return scrub(json.dumps(out, default=str))


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def configure(level: str = "INFO", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Send every log record (glioedge's and third parties') to ``stream`` (stderr) as JSON lines
    or plain text, PHI filter on; Python warnings become log records too.

    glioedge logs at ``level``; other libraries at WARNING unless ``level`` is DEBUG. Replaces
    handlers previously installed by this function, so it can be called again.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         _TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(PhiFilter())
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for old in list(root.handlers):
        to_stderr = isinstance(old, logging.StreamHandler) and \
            getattr(old, "stream", None) in (sys.stderr, sys.__stderr__)
        if old.get_name() == _HANDLER_NAME or to_stderr:
            root.removeHandler(old)
    root.addHandler(handler)
    third_party = "DEBUG" if level.upper() == "DEBUG" else "WARNING"
    root.setLevel(third_party)
    for name in ("glioedge", "pynetdicom"):  # undo the handlers of an earlier version
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]:
            logger.removeHandler(old)
        logger.propagate = True
    logging.getLogger("glioedge").setLevel(level.upper())
    # pynetdicom dumps whole datasets (patient identity included) at DEBUG: never below WARNING
    logging.getLogger("pynetdicom").setLevel("WARNING")
    for noisy in ("highdicom", "urllib3", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(third_party)
    logging.captureWarnings(True)
