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
import os
import re
import sys
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
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
#: Attributes every LogRecord has; everything else came through ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_HANDLER_NAME = "glioedge-daemon"


def _is_phi(key: str) -> bool:
    return key.lower().replace("_", "").replace("-", "") in PHI_KEYS


#: Values shorter than this are not scrubbed (a 2-character ID would shred every number); name
#: components (``Ng^Li``) count from :data:`MIN_NAME_PART_LENGTH`.
MIN_VALUE_LENGTH = 3
MIN_NAME_PART_LENGTH = 2

#: A word: a run of letters or digits of any script (``_`` and punctuation separate words).
_WORD = re.compile(r"[^\W_]+")
#: What may stand between the words of one value in a text (``DOE^JOHN`` as ``Doe John``,
#: ``Doe_John``, ``O'Brien`` as ``O Brien``); never a quote or backslash (JSON stays JSON).
_JOINER = re.compile(r"[\s^_\-.,'\u2019=]{1,3}")
_TRANSLIT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "æ": "ae", "ø": "oe",
                           "å": "aa"})
_Words = tuple[str, ...]


def _norm(word: str) -> str:
    return unicodedata.normalize("NFC", word).casefold()


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def value_forms(value: str) -> set[_Words]:
    """The word sequences a value may appear as in a text: case-folded, with and without accents
    (``Müller`` as ``MUELLER``, ``Muller``; viewer exports often strip them)."""
    base = _norm(value)
    forms = {base, _strip_accents(base), _strip_accents(base.translate(_TRANSLIT))}
    out = {tuple(_WORD.findall(f)) for f in forms} - {()}
    return out | {("".join(words),) for words in out if len(words) > 1}  # O'Brien as OBRIEN


class _Scrubber:
    """The process's known patient values and private folders (thread-safe, bounded).

    Values are kept as case-folded word sequences in a dictionary keyed by their first word, so
    that remembering a study's values costs a few dictionary inserts (no regular expression is
    rebuilt) and scrubbing a text costs one pass over its words. A value matches whole words only
    (a patient ID ``123`` leaves ``IM123`` and the UID ``1.2.123.4`` alone).
    """

    def __init__(self, capacity: int = 50_000) -> None:
        self._lock = threading.Lock()
        self._values: OrderedDict[_Words, None] = OrderedDict()
        self._by_first: dict[str, list[_Words]] = {}
        self._folders: list[str] = []
        self._capacity = capacity
        self._folder_pattern: re.Pattern[str] | None = None

    def add_values(self, values: list[str], min_length: int = MIN_VALUE_LENGTH) -> None:
        with self._lock:
            for raw in values:
                value = raw.strip()
                if len(value) < min_length:
                    continue
                for words in value_forms(value):
                    if words in self._values:
                        self._values.move_to_end(words)
                        continue
                    self._values[words] = None
                    bucket = self._by_first.setdefault(words[0], [])
                    bucket.append(words)
                    bucket.sort(key=len, reverse=True)  # the longest value first
            while len(self._values) > self._capacity:
                old, _ = self._values.popitem(last=False)
                bucket = self._by_first.get(old[0], [])
                bucket.remove(old)
                if not bucket:
                    del self._by_first[old[0]]

    def add_folder(self, folder: str) -> None:
        folder = folder.rstrip("/")
        with self._lock:
            if folder and folder not in self._folders:
                self._folders.append(folder)
                self._folder_pattern = re.compile("|".join(
                    re.escape(f) + r"/[^\s'\",;:()\[\]{}]*"
                    for f in sorted(self._folders, key=len, reverse=True)))

    def _spans(self, text: str) -> list[tuple[int, int]]:
        words = list(_WORD.finditer(text))
        keys = [_norm(w.group()) for w in words]
        spans: list[tuple[int, int]] = []
        i = 0
        with self._lock:
            while i < len(words):
                step = 1
                for value in self._by_first.get(keys[i], ()):
                    n = len(value)
                    if i + n > len(words) or tuple(keys[i:i + n]) != value:
                        continue
                    if not all(_JOINER.fullmatch(text, words[k - 1].end(), words[k].start())
                               for k in range(i + 1, i + n)):
                        continue
                    start, end = words[i].start(), words[i + n - 1].end()
                    if _in_number(text, start, end):
                        continue
                    spans.append((start, end))
                    step = n
                    break
                i += step
        return spans

    def scrub(self, text: str) -> str:
        if not text or not (self._values or self._folders):
            return text
        pattern = self._folder_pattern
        if pattern is not None:
            text = pattern.sub(_hashed_path, text)
        if not self._values:
            return text
        text = unicodedata.normalize("NFC", text)
        spans = self._spans(text)
        if not spans:
            return text
        out, last = [], 0
        for start, end in spans:
            out += [text[last:start], REDACTED]
            last = end
        out.append(text[last:])
        return "".join(out)


def hashed_path(path: str) -> str:
    """The stable, non-identifying form of an inbox path in logs and operator output."""
    return f"<inbox file {hashlib.sha256(path.encode()).hexdigest()[:12]}>"


def hide_paths(text: str, files: Iterable[str], inbox: str | Path | None = None) -> str:
    """``text`` with the job's input paths, and the folders that hold them up to the study's
    folder, replaced by a stable hashed form (``<inbox file 1a2b…>``, as in the logs): inbox
    folder names may carry patient names, IDs and birth dates. When the study's files lie in
    several folders of the ``inbox`` (so that messages name them relative to the inbox, the
    patient's folder first), those relative forms are hidden too."""
    paths = [Path(f) for f in files]
    if not paths:
        return text
    try:  # the study's folder: it and what lies below it are hidden, not the folders above
        base = Path(os.path.commonpath([str(p.parent) for p in paths]))
    except ValueError:
        base = None
    root = Path(inbox).absolute() if inbox else None
    relative = base is not None and root is not None and root.is_relative_to(base)
    names: set[str] = set()
    for path in paths:
        for p in (path, *path.parents):
            if (base is not None and not p.is_relative_to(base)) or len(p.parts) < 2:
                continue
            names.add(str(p))
            if relative and base is not None and p != base:  # as messages name them
                rel = p.relative_to(base)
                if len(rel.parts) >= 2:
                    names.add(str(rel))
    for name in sorted(names, key=len, reverse=True):
        if name in text:
            text = text.replace(name, hashed_path(name))
    return text


def _hashed_path(match: re.Match[str]) -> str:
    return hashed_path(match.group(0))


def _in_number(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` is one component of a dotted number such as a UID."""
    before = start >= 2 and text[start - 1] == "." and text[start - 2].isdigit()
    after = end + 1 < len(text) and text[end] == "." and text[end + 1].isdigit()
    return before or after


_SCRUBBER = _Scrubber()


def remember_phi(ds: Dataset) -> None:
    """Remember the patient identity values of ``ds`` so that no log line carries them.

    Matching is by whole words, case-insensitive and accent-insensitive (viewer exports change
    the case of folder names and may drop accents); person names also by component (family name,
    given names, two characters or more: ``Ng^Li``), so that ``DOE^JOHN`` is caught in a folder
    named ``Doe John_12345``.
    """
    values: list[str] = []
    parts: list[str] = []
    for keyword in PHI_ATTRIBUTES:
        value = ds.get(keyword)
        if value is None or value == "":
            continue
        items = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
        for item in items:
            text = str(item).strip()
            values.append(text)
            if keyword in _PERSON_NAMES:
                parts += [p for p in re.split(r"[\^=\s,]+", text) if p]
    _SCRUBBER.add_values(values)
    _SCRUBBER.add_values(parts, MIN_NAME_PART_LENGTH)


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
    text = json.dumps(value, default=str, ensure_ascii=False)  # match "Müller", not "M\\u00fcller"
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
        text = json.dumps(out, default=str, ensure_ascii=False)
        cleaned = scrub(text)
        if cleaned == text:
            return json.dumps(out, default=str)
        try:
            return json.dumps(json.loads(cleaned))
        except ValueError:
            return cleaned


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
