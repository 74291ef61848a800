"""Daemon configuration: one TOML file, overridden by the command line, with defaults that work.

The file has one table per concern (``[watch]``, ``[model]``, ``[segmenter]``, ``[delivery]``,
``[health]``, ``[receive]``, ``[log]``); every key is optional except the folders and the bundle,
which may come from the command line instead. ``docs/daemon.md`` is the reference.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from glioedge.errors import ConfigError

_AGE = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>[smhdw]?)\s*$")
_UNIT_S = {"": 86400.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
#: ``watch.job_timeout = 0``: a job's limit is this many seconds plus ...
AUTO_JOB_TIMEOUT = 600.0
#: ... this many per input file (a 4-series study of 600 files: 20 minutes).
AUTO_JOB_TIMEOUT_PER_FILE = 1.0
#: ``[delivery]`` keys that hold secrets: never logged, never on a command line.
SECRET_KEYS = ("stowrs_password", "stowrs_token")
_CSTORE = re.compile(r"^(?P<aet>[^@]{1,16})@(?P<host>[^:@]+):(?P<port>\d{1,5})$")


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
class DeliveryConfig:
    """Where SEGs go beyond the outbox, and how failed sends are retried.

    Attributes:
        folders: Extra folders that receive a copy of each study's outputs.
        cstore: PACS nodes as ``AET@HOST:PORT`` (DICOM C-STORE).
        stowrs: DICOMweb base URLs (STOW-RS ``POST <url>/studies``).
        cstore_tls_ca: PEM CA that signed the PACS's certificate: C-STORE over TLS (the PACS's
            certificate must name the host of ``cstore``).
        cstore_tls_cert: Our client certificate (with ``cstore_tls_key``) for a PACS that
            requires mutual TLS.
        cstore_tls_key: PEM private key of ``cstore_tls_cert``.
        cstore_tls_nodes: The ``cstore`` nodes (``AET@HOST:PORT`` as written there) reached over
            TLS; the others are plain. Empty with ``cstore_tls_ca`` set: every node uses TLS.
        stowrs_username: HTTP basic authentication for STOW-RS: the user ...
        stowrs_password: ... and the password, or better ``stowrs_password_env``, the name of
            an environment variable holding it (kept out of the file).
        stowrs_token: A bearer token for STOW-RS, or better ``stowrs_token_env`` (the name of an
            environment variable holding it). Secrets are never logged nor passed to the
            inference process.
        stowrs_allow_plaintext_credentials: Send the STOW-RS password or token to an
            ``http://`` URL, in clear text on the network (default off: refused at start-up;
            use ``https://``).
        calling_aet: Our AE title when we associate with a PACS.
        timeout: Network timeout of one send, in seconds.
        max_attempts: Sends of one SEG to one destination before the delivery is marked failed.
        backoff_initial: First delay between sends, in seconds.
        backoff_factor: Growth of the delay after each failure.
        backoff_max: Longest delay between sends, in seconds.
        deliver: Which quality verdicts are sent on as a SEG: ``ok``, ``ok+review`` or ``all``
            (default, the behaviour before the verdict existed). A study held back is
            quarantined with its verdict and reasons; its outputs stay in the outbox for review.
    """

    folders: tuple[str, ...] = ()
    cstore: tuple[str, ...] = ()
    stowrs: tuple[str, ...] = ()
    calling_aet: str = "GLIOEDGE"
    timeout: float = 30.0
    max_attempts: int = 50
    backoff_initial: float = 5.0
    backoff_factor: float = 2.0
    backoff_max: float = 600.0
    cstore_tls_ca: str = ""
    cstore_tls_cert: str = ""
    cstore_tls_key: str = ""
    cstore_tls_nodes: tuple[str, ...] = ()
    stowrs_username: str = ""
    stowrs_password: str = dataclasses.field(default="", repr=False)
    stowrs_password_env: str = ""
    stowrs_token: str = dataclasses.field(default="", repr=False)
    stowrs_token_env: str = ""
    stowrs_allow_plaintext_credentials: bool = False

    def uses_tls(self, node: str) -> bool:
        """Whether C-STORE to ``node`` goes over TLS (``cstore_tls_nodes``, else all with a CA)."""
        if not self.cstore_tls_ca:
            return False
        return not self.cstore_tls_nodes or parse_cstore(node) in {
            parse_cstore(n) for n in self.cstore_tls_nodes}
    deliver: str = "all"

    def stowrs_auth(self) -> tuple[str, Any] | None:
        """``("basic", (user, password))``, ``("bearer", token)`` or None, secrets read from the
        environment variables named by ``stowrs_password_env`` / ``stowrs_token_env`` when set.

        Raises:
            ConfigError: a named environment variable is unset or empty.
        """
        def secret(value: str, env: str, key: str) -> str:
            if env:
                found = os.environ.get(env, "")
                if not found:
                    raise ConfigError(f"delivery.{key}_env = {env!r}: that environment variable is "
                                      "not set (or empty)")
                return found
            return value

        token = secret(self.stowrs_token, self.stowrs_token_env, "stowrs_token")
        if token:
            return "bearer", token
        if self.stowrs_username:
            return "basic", (self.stowrs_username,
                             secret(self.stowrs_password, self.stowrs_password_env, "stowrs_password"))
        return None

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after ``attempts`` failed sends."""
        return min(self.backoff_max, self.backoff_initial * self.backoff_factor ** max(0, attempts - 1))


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
class ReceiveConfig:
    """The DICOM Storage SCP (``glioedge receive``).

    Attributes:
        aet: Our AE title.
        host: Address to listen on; ``0.0.0.0`` to accept scanners on the network (then
            ``allowed_calling_aets`` or ``allowed_peers`` must be set).
        port: TCP port (104 and 11112 are usual).
        inbox: Folder to write instances into (default: ``[watch] inbox``).
        allowed_calling_aets: Accept only these calling AE titles; empty accepts any (allowed
            only on a loopback address).
        allowed_peers: Accept connections only from these addresses or networks (``10.1.2.3``,
            ``10.1.2.0/24``); empty accepts any. Checked before a byte of DICOM is read.
        sop_classes: SOP Class UIDs accepted by C-STORE (default MR Image Storage and Enhanced
            MR Image Storage: what the daemon processes); others are not negotiated.
        min_free_mb: Free space (MiB) the inbox's file system keeps: below it, C-STORE answers
            "out of resources" (0xA700) instead of filling the disk.
        tls_cert: PEM certificate (chain) of the SCP: with ``tls_key``, associations are DICOM
            over TLS (TLS 1.2 or newer) and plain ones are refused.
        tls_key: PEM private key of ``tls_cert``.
        tls_ca: PEM CA bundle; when set, a client must present a certificate it signed
            (mutual TLS).
    """

    aet: str = "GLIOEDGE"
    host: str = "127.0.0.1"
    port: int = 11112
    inbox: str = ""
    allowed_calling_aets: tuple[str, ...] = ()
    allowed_peers: tuple[str, ...] = ()
    sop_classes: tuple[str, ...] = ("1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.4.1")
    min_free_mb: float = 512.0
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""


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
    delivery: DeliveryConfig = DeliveryConfig()
    health: HealthConfig = HealthConfig()
    receive: ReceiveConfig = ReceiveConfig()
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
        for node in d.cstore:
            parse_cstore(node)
        r = self.receive
        validate_receive_filters(r)
        if bool(r.tls_cert) != bool(r.tls_key) or (r.tls_ca and not r.tls_cert):
            raise ConfigError("receive: TLS needs both tls_cert and tls_key (tls_ca only with them)")
        if bool(d.cstore_tls_cert) != bool(d.cstore_tls_key) or (d.cstore_tls_cert and not d.cstore_tls_ca):
            raise ConfigError("delivery: a C-STORE client certificate needs cstore_tls_cert, "
                              "cstore_tls_key and cstore_tls_ca")
        if (d.stowrs_token or d.stowrs_token_env) and d.stowrs_username:
            raise ConfigError("delivery: give either stowrs_username (HTTP basic) or stowrs_token "
                              "(bearer), not both")
        if (d.stowrs_password or d.stowrs_password_env) and not d.stowrs_username:
            raise ConfigError("delivery.stowrs_password set without delivery.stowrs_username")
        for url in d.stowrs:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"delivery.stowrs {url!r}: expected an http(s):// URL")
        credentials = (d.stowrs_username or d.stowrs_token or d.stowrs_token_env)
        plain = [u for u in d.stowrs if u.startswith("http://")]
        if credentials and plain and not d.stowrs_allow_plaintext_credentials:
            raise ConfigError(f"delivery.stowrs {plain[0]!r} is plain http:// and STOW-RS "
                              "credentials are set: they would cross the network in clear text; "
                              "use https://, or accept the risk with "
                              "delivery.stowrs_allow_plaintext_credentials = true")
        nodes = {parse_cstore(n) for n in d.cstore}
        for node in d.cstore_tls_nodes:
            if parse_cstore(node) not in nodes:
                raise ConfigError(f"delivery.cstore_tls_nodes {node!r} is not one of delivery.cstore")
        if d.cstore_tls_nodes and not d.cstore_tls_ca:
            raise ConfigError("delivery.cstore_tls_nodes needs delivery.cstore_tls_ca (the CA that "
                              "signed those PACS' certificates)")
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


def validate_receive_filters(r: ReceiveConfig) -> None:
    """Check ``[receive]``'s filters: peers are addresses or networks, SOP classes are UIDs, the
    disk floor is a size, and a non-loopback address has a caller filter.

    Raises:
        ConfigError: naming the key and what is accepted.
    """
    import ipaddress

    for peer in r.allowed_peers:
        try:
            ipaddress.ip_network(peer, strict=False)
        except ValueError:
            raise ConfigError(f"receive.allowed_peers {peer!r}: expected an IP address or network "
                              "such as 10.1.2.3 or 10.1.2.0/24") from None
    if not r.sop_classes or not all(re.fullmatch(r"[0-9]+(\.[0-9]+)+", u) for u in r.sop_classes):
        raise ConfigError(f"receive.sop_classes = {list(r.sop_classes)}: expected SOP Class UIDs, "
                          "e.g. 1.2.840.10008.5.1.4.1.1.4 (MR Image Storage)")
    if not 0 <= r.min_free_mb < float("inf"):
        raise ConfigError(f"receive.min_free_mb = {r.min_free_mb}: expected MiB >= 0")
    try:
        loopback = ipaddress.ip_address(r.host).is_loopback
    except ValueError:
        loopback = r.host == "localhost"
    if not loopback and not (r.allowed_calling_aets or r.allowed_peers):
        raise ConfigError(f"receive.host = {r.host!r} accepts DICOM from the network: set "
                          "receive.allowed_calling_aets (--allowed-aet) and/or receive.allowed_peers "
                          "(--allowed-peer) to the scanners that may send")


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


def parse_cstore(node: str) -> tuple[str, str, int]:
    """Split ``AET@HOST:PORT``.

    Raises:
        ConfigError: the text is not of that form or the port is out of range.
    """
    match = _CSTORE.match(node.strip())
    if not match or not 0 < int(match["port"]) < 65536:
        raise ConfigError(f"C-STORE destination {node!r}: expected AET@HOST:PORT, "
                          "e.g. ORTHANC@127.0.0.1:4242")
    return match["aet"], match["host"], int(match["port"])


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
