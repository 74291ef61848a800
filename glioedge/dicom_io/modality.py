"""Decide which series of a study is FLAIR, T1CE, T1 and T2.

Score (documented, logged with its reasons): each series gets points per modality from
  * its text — SeriesDescription, ProtocolName and SequenceName, lower-cased, ``_-/.,()`` read as
    spaces (:data:`DEFAULT_TEXT_RULES`; e.g. ``flair``/``dark-fluid`` +10 for FLAIR);
  * its physics — FLAIR: inversion recovery with TI ≥ 1500 ms (+6) and TE ≥ 70 ms (+1);
    T2: spin echo without IR, TE ≥ 70 ms and TR ≥ 2000 ms (+4); T1: short TR/TE or an IR gradient
    echo with TI < 1300 ms (+2); contrast: ContrastBolusAgent (or its Enhanced sequence) set (+6);
  * user rules (a rule file adds or vetoes points per regular expression), and
  * +1 for a 3-D acquisition (MRAcquisitionType 3D), as isotropic data resample best.
T1CE needs both T1 and contrast evidence; T1 is zeroed by contrast evidence; T2 by FLAIR text.
A series counts for its best-scoring modality if that score is ≥ :data:`MIN_SCORE`. Series that
are DERIVED/SECONDARY, localisers, reformats (MPR/MIP), subtractions or diffusion/perfusion maps
are excluded. Among a modality's candidates the highest total wins. A tie between series of the
same protocol (same ProtocolName and SeriesDescription: a repeated acquisition, e.g. a FLAIR re-run
after motion) goes to the later acquisition (acquisition date/time, then SeriesNumber), and the
choice and the runner-up are recorded (``ModalitySelection.repeats``) and logged; the rule option
``repeats = "refuse"`` makes it an error instead. Any other tie is an error (pin one).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from glioedge.dicom_io.acquisition import minutes_between, series_time
from glioedge.dicom_io.discovery import Series, Study
from glioedge.errors import ConfigError, InputError
from glioedge.vocabulary import Modality

logger = logging.getLogger(__name__)


MIN_SCORE = 6.0
#: What to do with a repeated acquisition (tied series of one protocol): see the module docstring.
REPEAT_POLICIES = ("latest", "refuse")
T1_EVIDENCE = re.compile(r"\bt1|mp ?rage|spgr|bravo|\bvibe|\btfe\b|\btfl|flash|\bfl3d|\bt1w")
CONTRAST_EVIDENCE = re.compile(
    r"\+ ?c\b|\bc ?\+|\bpost\b|\bgd\b|\bgad|contrast|\bce\b|\bkm\b|\bgado|\bmdc\b")
#: (modality, pattern, points, why) applied to the normalised text.
DEFAULT_TEXT_RULES: tuple[tuple[str, str, float, str], ...] = (
    ("flair", r"flair|dark ?fluid|\bda ?fl\b", 10.0, "FLAIR/dark-fluid in name"),
    ("flair", r"\btirm\b", 3.0, "TIRM in name"),
    ("t2", r"\bt2(w|\b)|\bt2 ?tse|frfse", 8.0, "T2 in name"),
    ("t1", T1_EVIDENCE.pattern, 4.0, "T1 sequence in name"),
    ("t1", r"\bpre\b|native?\b|\bnat\b|without", 2.0, "pre-contrast in name"),
)
EXCLUDE_TEXT = (
    r"\bloc\b|locali[sz]er|scout|survey|\b3 ?pl(ane)?\b|tri ?pilot|aahead",
    r"\bmpr\b|reformat|\bmip\b|\bmprs?\b|\brecon\b",
    r"\bsub\b|subtract",
    r"\badc\b|\bdwi\b|diffusion|\btrace\b|perfusion|\bswi\b|\bdti\b|\btof\b|\bfa\b|\bcbv\b",
)
EXCLUDE_IMAGE_TYPE = {"DERIVED", "SECONDARY", "LOCALIZER", "MPR", "PROJECTION IMAGE",
                      "SUBTRACTION", "SUB", "MIP", "REFORMATTED", "ADC", "DIFFUSION"}


@dataclasses.dataclass(frozen=True)
class ModalityRules:
    """User rules, from a JSON or TOML file (``load_rules``).

    Attributes:
        pins: modality → SeriesInstanceUID, SeriesNumber (int) or exact SeriesDescription;
            a pinned series is chosen whatever its score.
        text_rules: extra ``(modality, regex, points, why)``; negative points veto.
        exclude: extra regexes; a series whose text matches one is never a candidate.
        use_defaults: False drops :data:`DEFAULT_TEXT_RULES` (the physics rules stay).
        repeats: ``latest`` (default) chooses the later of repeated acquisitions; ``refuse``
            fails the study instead, for sites that want a person to choose.
    """

    pins: Mapping[str, str | int] = dataclasses.field(default_factory=dict)
    text_rules: tuple[tuple[str, str, float, str], ...] = ()
    exclude: tuple[str, ...] = ()
    use_defaults: bool = True
    repeats: str = "latest"

    def __post_init__(self) -> None:
        """Validate the repeat policy.

        Raises:
            ConfigError: ``repeats`` is not one of :data:`REPEAT_POLICIES`.
        """
        if self.repeats not in REPEAT_POLICIES:
            raise ConfigError(f"modality rules: repeats = {self.repeats!r}; expected one of "
                              f"{', '.join(REPEAT_POLICIES)}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModalityRules:
        """Build from ``{"pin": {...}, "rules": [{"modality", "pattern", "score", "why"}],
        "exclude": [...], "use_defaults": bool, "repeats": "latest" | "refuse"}``.

        Raises:
            ConfigError: an unknown key or modality, or an invalid regular expression.
        """
        unknown = set(data) - {"pin", "rules", "exclude", "use_defaults", "repeats"}
        if unknown:
            raise ConfigError(f"modality rules: unknown keys {sorted(unknown)}; expected pin, "
                              "rules, exclude, use_defaults, repeats")
        valid = {m.value for m in Modality}
        pins = dict(data.get("pin", {}))
        rules = []
        for rule in data.get("rules", []):
            rules.append((str(rule.get("modality")), str(rule.get("pattern")),
                          float(rule.get("score", 10.0)), str(rule.get("why", "user rule"))))
        for modality in [*pins, *(r[0] for r in rules)]:
            if modality not in valid:
                raise ConfigError(f"modality rules: unknown modality {modality!r}; "
                                  f"expected one of {sorted(valid)}")
        exclude = tuple(str(p) for p in data.get("exclude", []))
        for pattern in [*(r[1] for r in rules), *exclude]:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"modality rules: invalid regex {pattern!r}: {exc}") from exc
        return cls(pins, tuple(rules), exclude, bool(data.get("use_defaults", True)),
                   str(data.get("repeats", "latest")))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (inverse of :meth:`from_dict`)."""
        return {"pin": dict(self.pins), "exclude": list(self.exclude),
                "use_defaults": self.use_defaults, "repeats": self.repeats,
                "rules": [{"modality": m, "pattern": p, "score": s, "why": w}
                          for m, p, s, w in self.text_rules]}


def load_rules(path: str | Path) -> ModalityRules:
    """Read a JSON (``.json``) or TOML (``.toml``) rule file.

    Raises:
        ConfigError: the file is missing, unreadable, of another type, or invalid.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        elif path.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            raise ConfigError(f"rule file {path}: expected a .json or .toml file")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"rule file {path} cannot be read: {exc}") from exc
    return ModalityRules.from_dict(data)


@dataclasses.dataclass
class Candidate:
    """One series' scores: modality → points, and why."""

    series: Series
    scores: dict[str, float]
    reasons: dict[str, list[str]]
    excluded: str = ""

    def best(self) -> tuple[str, float]:
        """The modality this series counts for and its score (``("", 0)`` if none)."""
        if self.excluded or not self.scores:
            return "", 0.0
        order = [m.value for m in (Modality.FLAIR, Modality.T1CE, Modality.T2, Modality.T1)]
        modality = max(order, key=lambda m: (self.scores.get(m, 0.0), -order.index(m)))
        score = self.scores.get(modality, 0.0)
        return (modality, score) if score >= MIN_SCORE else ("", score)

    def summary(self) -> str:
        """``#3 'AX FLAIR' → flair 17 (FLAIR in name +10, ...)`` for logs and errors."""
        if self.excluded:
            return f"{self.series.label()}: excluded ({self.excluded})"
        modality, score = self.best()
        why = ", ".join(self.reasons.get(modality, [])) if modality else "no rule matched enough"
        return f"{self.series.label()}: {modality or 'none'} {score:g} ({why})"


@dataclasses.dataclass
class ModalitySelection:
    """Which series was chosen for each modality, and why."""

    chosen: dict[str, Series]
    why: dict[str, str]
    candidates: list[Candidate]
    repeats: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (UIDs and descriptions, never patient data)."""
        return {"chosen": {m: series_dict(s) for m, s in self.chosen.items()},
                "why": dict(self.why), "candidates": [c.summary() for c in self.candidates],
                "repeats": {m: dict(r) for m, r in self.repeats.items()}}


def series_dict(series: Series) -> dict[str, Any]:
    """UID, number and description of a series (JSON-safe, no patient data)."""
    return {"series_instance_uid": series.series_instance_uid,
            "series_number": series.series_number, "description": series.description}


def _first(ds: Dataset, keyword: str, path: Sequence[str] = ()) -> Any:
    if keyword in ds and ds.get(keyword) not in (None, ""):
        return ds.get(keyword)
    for group_name in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        groups = ds.get(group_name) or []
        item = groups[0] if groups else None
        for name in path:
            seq = item.get(name) if item is not None else None
            item = seq[0] if seq else None
        if item is not None and item.get(keyword) not in (None, ""):
            return item.get(keyword)
    return None


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value[0] if isinstance(value, Sequence) and not isinstance(value, str)
                     else value)
    except (TypeError, ValueError, IndexError):
        return None


def normalise_text(ds: Dataset) -> str:
    """SeriesDescription + ProtocolName + SequenceName, lower-case, separators as spaces."""
    parts = [str(ds.get(k, "") or "") for k in ("SeriesDescription", "ProtocolName",
                                                 "SequenceName", "PulseSequenceName")]
    return re.sub(r"\s+", " ", re.sub(r"[_\-/.,()*]", " ", " | ".join(parts).lower())).strip()


def score_series(series: Series, rules: ModalityRules | None = None) -> Candidate:
    """Score one series for every modality (see the module docstring for the rules)."""
    rules = rules or ModalityRules()
    ds = series.header
    text = normalise_text(ds)
    image_type = {str(v).upper() for v in (ds.get("ImageType") or [])}
    bad_type = sorted(image_type & EXCLUDE_IMAGE_TYPE)
    if bad_type:
        return Candidate(series, {}, {}, f"ImageType {'/'.join(bad_type)}")
    for pattern in (*EXCLUDE_TEXT, *rules.exclude):
        match = re.search(pattern, text)
        if match:
            return Candidate(series, {}, {}, f"name matches {match.group(0).strip()!r}")
    scores: dict[str, float] = {m.value: 0.0 for m in Modality}
    reasons: dict[str, list[str]] = {m.value: [] for m in Modality}

    def add(modality: str, points: float, why: str) -> None:
        scores[modality] += points
        reasons[modality].append(f"{why} {points:+g}")

    text_rules = (DEFAULT_TEXT_RULES if rules.use_defaults else ()) + rules.text_rules
    for modality, pattern, points, why in text_rules:
        if re.search(pattern, text):
            add(modality, points, why)
    scanning = {str(v).upper() for v in (ds.get("ScanningSequence") or [])}
    ti = _number(_first(ds, "InversionTime")) or _number(
        _first(ds, "InversionTimes", ("MRModifierSequence",)))
    te = _number(_first(ds, "EchoTime")) or _number(
        _first(ds, "EffectiveEchoTime", ("MREchoSequence",)))
    tr = _number(_first(ds, "RepetitionTime", ("MRTimingAndRelatedParametersSequence",)))
    if ti is not None and ti >= 1500:
        add("flair", 6.0, f"TI={ti:g} ms")
        if te is not None and te >= 70:
            add("flair", 1.0, f"TE={te:g} ms")
    elif T1_EVIDENCE.search(text) and re.search(r"flair", text):
        scores["flair"], reasons["flair"] = 0.0, ["T1 FLAIR with short TI is T1-weighted"]
    if "IR" not in scanning and "GR" not in scanning and te and te >= 70 and tr and tr >= 2000:
        add("t2", 4.0, f"spin echo TE={te:g} TR={tr:g} ms")
    t1_physics = (tr is not None and te is not None and tr < 1000 and te < 30) or (
        "GR" in scanning and ti is not None and ti < 1300)
    if t1_physics:
        add("t1", 2.0, "T1-weighted timing")
    if scores["flair"] > 0 and scores["t2"] > 0:
        scores["t2"], reasons["t2"] = 0.0, ["FLAIR, not T2"]
    contrast = [why for why, hit in (
        ("contrast in name", CONTRAST_EVIDENCE.search(text)),
        ("ContrastBolusAgent set", ds.get("ContrastBolusAgent") or
         ds.get("ContrastBolusAgentSequence")),
    ) if hit]
    if contrast and scores["t1"] > 0:
        scores["t1ce"] += scores["t1"] + 6.0 * len(contrast)
        reasons["t1ce"] += [*reasons["t1"], *(f"{why} +6" for why in contrast)]
        scores["t1"], reasons["t1"] = 0.0, ["contrast given"]
    if str(ds.get("MRAcquisitionType", "")).upper() == "3D":
        for modality in [m for m, value in scores.items() if value >= MIN_SCORE]:
            add(modality, 1.0, "3-D acquisition")
    return Candidate(series, scores, reasons)


def _pinned(study_series: Sequence[Series], pin: str | int, modality: str) -> Series:
    for series in study_series:
        if (str(pin) == series.series_instance_uid
                or (isinstance(pin, int) and series.series_number == pin)
                or (isinstance(pin, str) and pin.lower() == series.description.lower())):
            return series
    listing = "; ".join(s.label() for s in study_series)
    raise InputError(f"rule file pins {modality} to {pin!r}, which matches no series: {listing}")


def identify_modalities(
    study: Study | Sequence[Series],
    required: Sequence[str | Modality] = ("flair", "t1ce"),
    optional: Sequence[str | Modality] = ("t1", "t2"),
    rules: ModalityRules | None = None,
) -> ModalitySelection:
    """Choose one series per modality.

    Args:
        study: A study (or its series).
        required: Modalities that must be found.
        optional: Modalities chosen when a candidate exists.
        rules: User rules and pins.

    Returns:
        The chosen series per modality with the reasons, and every series' scores.

    Raises:
        InputError: a required modality has no candidate, or its best candidates tie; the message
            lists every series and how it scored.
    """
    rules = rules or ModalityRules()
    all_series = list(study.series.values()) if isinstance(study, Study) else list(study)
    candidates = [score_series(s, rules) for s in all_series]
    listing = " | ".join(c.summary() for c in candidates)
    chosen: dict[str, Series] = {}
    why: dict[str, str] = {}
    repeats: dict[str, dict[str, Any]] = {}
    wanted = [Modality(m).value for m in required]
    for modality in [*wanted, *(Modality(m).value for m in optional)]:
        if modality in rules.pins:
            chosen[modality] = _pinned(all_series, rules.pins[modality], modality)
            why[modality] = "pinned by the rule file"
            logger.info("%s: %s (pinned)", modality, chosen[modality].label())
            continue
        ranked = sorted((c for c in candidates if c.best()[0] == modality),
                        key=lambda c: -c.best()[1])
        if not ranked:
            if modality in wanted:
                raise InputError(f"no {modality.upper()} series found among "
                                 f"{len(all_series)} series: {listing}")
            continue
        if len(ranked) > 1 and ranked[0].best()[1] == ranked[1].best()[1]:
            tied = [c for c in ranked if c.best()[1] == ranked[0].best()[1]]
            winner, repeats[modality] = _later_repeat(tied, modality, rules)
            ranked = [winner, *(c for c in ranked if c is not winner)]
        chosen[modality] = ranked[0].series
        why[modality] = ranked[0].summary()
        if modality in repeats:
            why[modality] += f"; {repeats[modality]['decision']}"
        others = "; ".join(c.summary() for c in ranked[1:])
        logger.info("%s: chose %s%s", modality, why[modality],
                    f" over {others}" if others else "")
    return ModalitySelection(chosen, why, candidates, repeats)


def _protocol(series: Series) -> tuple[str, str]:
    """(ProtocolName, SeriesDescription), normalised: both must match for a repeat, as some vendors
    put the whole exam's protocol in ProtocolName."""
    protocol, description = (re.sub(r"\s+", " ", str(series.header.get(k, "") or "").strip().lower())
                             for k in ("ProtocolName", "SeriesDescription"))
    return protocol, description


def _later_repeat(tied: list[Candidate], modality: str, rules: ModalityRules
                  ) -> tuple[Candidate, dict[str, Any]]:
    """Choose among tied candidates that are repeats of one protocol: the later acquisition.

    Returns:
        The winner and the record for :attr:`ModalitySelection.repeats` (chosen, runner-up,
        basis of the decision; no dates, which are PHI).

    Raises:
        InputError: the tied series are not of one protocol, the rules refuse repeats, or which
            one is later cannot be told (same or no acquisition time and SeriesNumber).
    """
    listing = " | ".join(c.summary() for c in tied)
    pin_hint = f"pin one in a rule file (pin.{modality} = SeriesInstanceUID)"
    prefix = f"{len(tied)} {modality.upper()} candidates tie at score {tied[0].best()[1]:g}: {listing}"
    protocols = {_protocol(c.series) for c in tied}
    if len(protocols) > 1 or not any(next(iter(protocols))):
        raise InputError(f"{prefix}; {pin_hint}")
    if rules.repeats == "refuse":
        raise InputError(f"{prefix}; they are repeated acquisitions of one protocol and the rule "
                         f"file sets repeats = \"refuse\": {pin_hint}")

    def key(c: Candidate) -> tuple[str, int]:
        number = c.series.series_number
        return series_time(c.series.datasets)[0], -1 if number is None else number

    order = sorted(tied, key=key, reverse=True)
    winner, runner_up = order[0], order[1]
    (t_win, basis), (t_run, _) = (series_time(c.series.datasets) for c in (winner, runner_up))
    if t_win and t_run and t_win != t_run:
        minutes = minutes_between(t_run, t_win)
        later = f"{minutes:.1f} min later" if minutes is not None else "later"
        decision = f"repeated acquisition: the later one ({later}, {basis})"
    elif key(winner)[1] != key(runner_up)[1]:
        basis = "SeriesNumber"
        decision = "repeated acquisition: the later one (same or no acquisition time; higher SeriesNumber)"
    else:
        raise InputError(f"{prefix}; they are repeated acquisitions of one protocol but neither "
                         f"acquisition time nor SeriesNumber tells which is later: {pin_hint}")
    record = {"chosen": series_dict(winner.series), "runner_up": series_dict(runner_up.series),
              "others": [series_dict(c.series) for c in order[2:]], "basis": basis,
              "decision": decision}
    logger.info("%s: %s: chose %s over %s", modality, decision, winner.series.label(),
                runner_up.series.label())
    return winner, record
