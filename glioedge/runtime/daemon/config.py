"""Daemon configuration: one TOML file, overridden by the command line, with defaults that work.

The file has one table per concern (``[watch]``, ``[model]``, ``[segmenter]``, ``[delivery]``,
``[health]``, ``[receive]``, ``[log]``); every key is optional except the folders and the bundle,
which may come from the command line instead. ``docs/daemon.md`` is the reference.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from glioedge.errors import ConfigError
from glioedge.runtime.daemon.peers import SECRET_KEYS, DeliveryConfig, ReceiveConfig

_AGE = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>[smhdw]?)\s*$")
_UNIT_S = {"": 86400.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
#: ``watch.job_timeout = 0``: a job's limit is this many seconds plus ...
AUTO_JOB_TIMEOUT = 600.0
#: ... this many per input file (a 4-series study of 600 files: 20 minutes).
AUTO_JOB_TIMEOUT_PER_FILE = 1.0


@dataclasses.dataclass(frozen=True)
class WatchConfig:
    """Folders, study completeness and job retries.

    Attributes:
        inbox: Folder watched for incoming DICOM files (any layout, recursive).
        outbox: Folder the results go to, ``<outbox>/<study uid>/job-<id>/seg.dcm`` and friends
            (one folder per version).
        quarantine: Where bad studies are copied; default ``<outbox>/_quarantine``.
        state: Where the job store lives; default ``<outbox>/_state`` (put it on another disk
            than the outbox so that a full outbox cannot stop the store from recording it).
        quiet_time: Seconds without a new file before a study counts as complete.
        max_wait: Seconds after a study's first file after which it is processed or quarantined
            even if its required series are still missing.
        poll_interval: Seconds between rescans (the polling fallback; watchdog events only make
            a rescan come sooner).
        watchdog: Use filesystem events when the ``watchdog`` package is importable.
        max_attempts: Starts of one job (crashes included) before it is marked failed.
        retry_initial: First delay in seconds before a job that hit an environmental error
            (full disk, permissions) or a model error is retried; doubles up to ``retry_max``.
        retry_max: Longest delay between job retries, in seconds.
        keep_inputs: Keep the input files after success (default); ``false`` deletes a version's
            input files once it is done and nothing needs them (:mod:`.ownership`).
        job_timeout: Seconds one job may run before its inference process (with everything it
            started) is killed and the attempt counted; ``0`` (default): derived from the study,
            ``600 + 1 per input file`` (see :meth:`job_limit`).
        stop_grace: Seconds a stop (SIGTERM) waits for the running job before killing it (the
            job is re-queued, not charged).
        rescan_interval: Seconds between full rescans of the inbox; in between, a poll lists
            only folders that changed (see ``docs/daemon.md``, "Scanning a large inbox").
    """

    inbox: str = ""
    outbox: str = ""
    quarantine: str = ""
    state: str = ""
    quiet_time: float = 30.0
    max_wait: float = 1800.0
    poll_interval: float = 2.0
    watchdog: bool = True
    max_attempts: int = 3
    retry_initial: float = 10.0
    retry_max: float = 600.0
    keep_inputs: bool = True
    job_timeout: float = 0.0
    stop_grace: float = 10.0
    rescan_interval: float = 60.0

    def job_limit(self, files: int) -> float:
        """The time limit of a job over ``files`` input files, in seconds."""
        if self.job_timeout > 0:
            return self.job_timeout
        return AUTO_JOB_TIMEOUT + AUTO_JOB_TIMEOUT_PER_FILE * files

    @property
    def quarantine_dir(self) -> Path:
        """The quarantine folder, default under the outbox."""
        return Path(self.quarantine) if self.quarantine else Path(self.outbox) / "_quarantine"

    @property
    def state_dir(self) -> Path:
        """The job-store folder, default under the outbox."""
        return Path(self.state) if self.state else Path(self.outbox) / "_state"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which bundle, back-end and device run the segmentation, and the modality rule file.

    ``pass_env`` names further environment variables the inference process receives (e.g.
    ``FREESURFER_HOME`` for a ``brain_mask_command``); it otherwise gets only an allowlist
    (:data:`glioedge.runtime.daemon.jobproc.CHILD_ENV_NAMES`), never a delivery secret.
    """

    bundle: str = ""
    backend: str = "auto"
    device: str = ""
    rules: str = ""
    #: Folder for TensorRT engines built on first use ("": ~/.cache/glioedge/engines; set it
    #: where the service may write, e.g. under systemd's ProtectHome=).
    engine_cache: str = ""
    pass_env: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class HealthConfig:
    """The HTTP health and metrics endpoint; ``port = 0`` disables it.

    Attributes:
        host: Address to bind (loopback by default).
        port: TCP port; 0 disables the endpoint.
        allowed_hosts: ``Host`` header names accepted besides ``localhost``, the loopback
            addresses and ``host`` itself (e.g. the box's DNS name and address when bound to
            ``0.0.0.0``); any other is answered 421 (DNS rebinding).
        max_connections: Connections served at once; more are answered 503 at once.
    """

    host: str = "127.0.0.1"
    port: int = 0
    allowed_hosts: tuple[str, ...] = ()
    max_connections: int = 8


@dataclasses.dataclass(frozen=True)
class RetentionConfig:
    """How long ``glioedge purge`` keeps inputs, outputs, quarantine and job rows.

    Attributes:
        older_than: Default age for ``glioedge purge`` without ``--older-than`` (``"30d"``,
            ``"12h"``; a bare number is days); empty: ``purge`` needs ``--older-than``.
    """

    older_than: str = ""


@dataclasses.dataclass(frozen=True)
class StatusPageConfig:
    """The read-only status page on the health port.

    Attributes:
        jobs: How many recent jobs it lists.
        refresh: Seconds between the page's own reloads.
        show_patient: Also show patient name and ID read from the job's inputs (off: the page
            shows studies by UID only).
    """

    jobs: int = 25
    refresh: int = 10
    show_patient: bool = False


@dataclasses.dataclass(frozen=True)
class LogConfig:
    """Log level and format (``json`` lines or plain ``text``)."""

    level: str = "INFO"
    format: str = "json"


_SECTIONS: dict[str, type] = {
    "watch": WatchConfig, "model": ModelConfig, "delivery": DeliveryConfig,
    "health": HealthConfig, "receive": ReceiveConfig, "log": LogConfig,
    "retention": RetentionConfig, "status_page": StatusPageConfig,
}


@dataclasses.dataclass(frozen=True)
class DaemonConfig:
    """The whole daemon configuration; ``segmenter`` is passed to ``SegmenterConfig.from_dict``."""

    watch: WatchConfig = WatchConfig()
    model: ModelConfig = ModelConfig()
    delivery: DeliveryConfig = dataclasses.field(default_factory=DeliveryConfig)
    health: HealthConfig = HealthConfig()
    receive: ReceiveConfig = dataclasses.field(default_factory=ReceiveConfig)
    log: LogConfig = LogConfig()
    retention: RetentionConfig = RetentionConfig()
    status_page: StatusPageConfig = StatusPageConfig()
    segmenter: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self, redact: bool = False) -> dict[str, Any]:
        """JSON/TOML-serialisable form (tuples become lists); ``redact`` blanks the secrets."""
        out: dict[str, Any] = {}
        for name in _SECTIONS:
            out[name] = {k: list(v) if isinstance(v, tuple) else v
                         for k, v in dataclasses.asdict(getattr(self, name)).items()}
        if redact:
            for key in SECRET_KEYS:
                out["delivery"][key] = ""
        out["segmenter"] = dict(self.segmenter)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DaemonConfig:
        """Build and validate from nested tables.

        Raises:
            ConfigError: an unknown table or key, a value of the wrong type, or an invalid value.
        """
        unknown = set(data) - {*_SECTIONS, "segmenter"}
        if unknown:
            raise ConfigError(f"unknown configuration table(s) {sorted(unknown)}; "
                              f"accepted: {sorted([*_SECTIONS, 'segmenter'])}")
        kwargs: dict[str, Any] = {}
        for name, section_type in _SECTIONS.items():
            kwargs[name] = _section(name, section_type, data.get(name, {}))
        segmenter = data.get("segmenter", {})
        if not isinstance(segmenter, Mapping):
            raise ConfigError("[segmenter] must be a table of SegmenterConfig fields")
        config = cls(segmenter=dict(segmenter), **kwargs)
        config.validate()
        return config

    def validate(self) -> None:
        """Check values that types alone do not.

        Raises:
            ConfigError: naming the key and what is accepted.
        """
        w, d = self.watch, self.delivery
        from glioedge.runtime.quality.policy import check_policy

        check_policy(d.deliver)
        for key, value in (("watch.quiet_time", w.quiet_time), ("watch.retry_initial", w.retry_initial),
                           ("watch.retry_max", w.retry_max), ("watch.job_timeout", w.job_timeout),
                           ("watch.stop_grace", w.stop_grace),
                           ("delivery.backoff_initial", d.backoff_initial),
                           ("delivery.backoff_max", d.backoff_max)):
            if not value >= 0:  # also refuses NaN
                raise ConfigError(f"{key} = {value}: expected a number of seconds >= 0")
        for key, value in (("watch.poll_interval", w.poll_interval), ("watch.max_wait", w.max_wait),
                           ("watch.rescan_interval", w.rescan_interval),
                           ("delivery.timeout", d.timeout)):
            if not 0 < value < float("inf"):
                raise ConfigError(f"{key} = {value}: expected a number of seconds > 0")
        if not w.max_wait >= w.quiet_time:
            raise ConfigError(f"watch.max_wait = {w.max_wait} is shorter than watch.quiet_time = "
                              f"{w.quiet_time}: a study would be forced before it could be quiet")
        if not d.backoff_factor >= 1:
            raise ConfigError(f"delivery.backoff_factor = {d.backoff_factor}: expected >= 1")
        for key, count in (("watch.max_attempts", w.max_attempts),
                           ("delivery.max_attempts", d.max_attempts)):
            if count < 1:
                raise ConfigError(f"{key} = {count}: expected an integer >= 1")
        for key, port, low in (("health.port", self.health.port, 0),
                               ("receive.port", self.receive.port, 1)):
            if not low <= port <= 65535:
                raise ConfigError(f"{key} = {port}: expected a TCP port {low}..65535")
        for key, aet in (("delivery.calling_aet", d.calling_aet), ("receive.aet", self.receive.aet)):
            if not 0 < len(aet.strip()) <= 16 or "\\" in aet:
                raise ConfigError(f"{key} = {aet!r}: expected an AE title of 1 to 16 characters")
        if not 1 <= self.health.max_connections <= 256:
            raise ConfigError(f"health.max_connections = {self.health.max_connections}: expected 1..256")
        if self.log.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError(f"log.level = {self.log.level!r}: expected DEBUG, INFO, WARNING or ERROR")
        d.validate()
        self.receive.validate()
        if self.retention.older_than:
            parse_age(self.retention.older_than, "retention.older_than")
        if not 1 <= self.status_page.jobs <= 1000 or not 1 <= self.status_page.refresh <= 3600:
            raise ConfigError("status_page.jobs must be 1..1000 and status_page.refresh 1..3600 s")
        seg = self.segmenter
        if seg.get("require_signature") and not seg.get("trusted_keys"):
            raise ConfigError("[segmenter] require_signature = true without trusted_keys accepts a "
                              "bundle re-signed with any key: set [segmenter] trusted_keys = "
                              "[\"/etc/glioedge/release.pub\"]")
        if self.log.format not in ("json", "text"):
            raise ConfigError(f"log.format = {self.log.format!r}: expected 'json' or 'text'")

    def require_folders(self) -> None:
        """Check what ``watch`` needs before it starts.

        Raises:
            ConfigError: the inbox, outbox or bundle is not set, or a folder the daemon writes
                (outbox, quarantine, state) is the inbox or contains it (every input would be
                excluded from the scan as the daemon's own output).
        """
        missing = [k for k, v in (("watch.inbox", self.watch.inbox), ("watch.outbox", self.watch.outbox),
                                  ("model.bundle", self.model.bundle)) if not v]
        if missing:
            raise ConfigError(f"{', '.join(missing)} not set: give them in the config file or on "
                              "the command line (INBOX, --out, --bundle)")
        inbox = Path(self.watch.inbox).expanduser().resolve()
        w = self.watch
        for key, folder in (("watch.outbox", Path(w.outbox)), ("watch.quarantine", w.quarantine_dir),
                            ("watch.state", w.state_dir)):
            resolved = folder.expanduser().resolve()
            if inbox == resolved or inbox.is_relative_to(resolved):
                raise ConfigError(
                    f"{key} {resolved} {'is' if inbox == resolved else 'contains'} the inbox "
                    f"{inbox}: the daemon would skip every input as its own output; use a folder "
                    "beside the inbox or inside it")


def _section(name: str, section_type: type, table: Any) -> Any:
    if not isinstance(table, Mapping):
        raise ConfigError(f"[{name}] must be a table")
    fields = {f.name: f for f in dataclasses.fields(section_type)}
    unknown = set(table) - set(fields)
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)} in [{name}]; accepted: {sorted(fields)}")
    defaults = section_type()
    values: dict[str, Any] = {}
    for key, value in table.items():
        default = getattr(defaults, key)
        values[key] = _coerce(f"{name}.{key}", value, default)
    return section_type(**values)


def _coerce(key: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif isinstance(default, tuple):
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
    elif isinstance(default, float):
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            try:
                return float(value)
            except ValueError:
                pass
    elif isinstance(default, int):
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            try:
                return int(value)
            except ValueError:
                pass
    elif isinstance(default, str) and isinstance(value, (str, Path)):
        return str(value)
    raise ConfigError(f"{key} = {value!r}: expected {type(default).__name__}")


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> DaemonConfig:
    """Read the TOML file (if any) and apply dotted-key overrides such as ``watch.quiet_time``.

    Args:
        path: A ``.toml`` file, or None for defaults only.
        overrides: ``{"section.key": value}``; None values are ignored.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: the file cannot be read or parsed, or a value is invalid.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        import tomllib

        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"configuration file {path} cannot be read: {exc}") from exc
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        if not key:
            raise ConfigError(f"override {dotted!r}: expected section.key")
        data.setdefault(section, {})[key] = value
    return DaemonConfig.from_dict(data)


def parse_age(text: str, option: str = "--older-than") -> float:
    """``"30d"``, ``"12h"``, ``"90m"``, ``"45s"``, ``"2w"`` (a bare number is days) → seconds.

    Raises:
        ConfigError: not of that form (names ``option``).
    """
    match = _AGE.match(str(text))
    if not match:
        raise ConfigError(f"{option} {text!r}: expected an age such as 30d, 12h, 90m or 45s")
    return float(match["n"]) * _UNIT_S[match["unit"]]
