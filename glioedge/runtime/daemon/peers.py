"""Settings of the daemon's network peers: where results are sent (``[delivery]``: folders,
PACS by C-STORE, DICOMweb by STOW-RS, with TLS and credentials) and who may send studies
(``[receive]``, the Storage SCP). Each section checks its own values; ``config`` assembles them.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

from glioedge.errors import ConfigError

#: ``[delivery]`` keys that hold secrets: never logged, never on a command line.
SECRET_KEYS = ("stowrs_password", "stowrs_token")
_CSTORE = re.compile(r"^(?P<aet>[^@]{1,16})@(?P<host>[^:@]+):(?P<port>\d{1,5})$")


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

    def validate(self) -> None:
        """Check the destinations, TLS files and STOW-RS credentials together (numbers are
        checked with the other sections' by ``DaemonConfig.validate``).

        Raises:
            ConfigError: naming the key and what is accepted.
        """
        for node in self.cstore:
            parse_cstore(node)
        tls = (self.cstore_tls_cert, self.cstore_tls_key, self.cstore_tls_ca)
        if bool(tls[0]) != bool(tls[1]) or (tls[0] and not tls[2]):
            raise ConfigError("delivery: a C-STORE client certificate needs cstore_tls_cert, "
                              "cstore_tls_key and cstore_tls_ca")
        if (self.stowrs_token or self.stowrs_token_env) and self.stowrs_username:
            raise ConfigError("delivery: give either stowrs_username (HTTP basic) or stowrs_token "
                              "(bearer), not both")
        if (self.stowrs_password or self.stowrs_password_env) and not self.stowrs_username:
            raise ConfigError("delivery.stowrs_password set without delivery.stowrs_username")
        for url in self.stowrs:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"delivery.stowrs {url!r}: expected an http(s):// URL")
        credentials = (self.stowrs_username or self.stowrs_token or self.stowrs_token_env)
        plain = [u for u in self.stowrs if u.startswith("http://")]
        if credentials and plain and not self.stowrs_allow_plaintext_credentials:
            raise ConfigError(f"delivery.stowrs {plain[0]!r} is plain http:// and STOW-RS "
                              "credentials are set: they would cross the network in clear text; "
                              "use https://, or accept the risk with "
                              "delivery.stowrs_allow_plaintext_credentials = true")
        nodes = {parse_cstore(n) for n in self.cstore}
        for node in self.cstore_tls_nodes:
            if parse_cstore(node) not in nodes:
                raise ConfigError(f"delivery.cstore_tls_nodes {node!r} is not one of delivery.cstore")
        if self.cstore_tls_nodes and not self.cstore_tls_ca:
            raise ConfigError("delivery.cstore_tls_nodes needs delivery.cstore_tls_ca (the CA that "
                              "signed those PACS' certificates)")


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

    def validate(self) -> None:
        """Check the filters (peers are addresses or networks, SOP classes are UIDs, the disk
        floor is a size, a non-loopback address has a caller filter) and the TLS files.

        Raises:
            ConfigError: naming the key and what is accepted.
        """
        import ipaddress

        for peer in self.allowed_peers:
            try:
                ipaddress.ip_network(peer, strict=False)
            except ValueError:
                raise ConfigError(f"receive.allowed_peers {peer!r}: expected an IP address or network "
                                  "such as 10.1.2.3 or 10.1.2.0/24") from None
        if not self.sop_classes or not all(re.fullmatch(r"[0-9]+(\.[0-9]+)+", u) for u in self.sop_classes):
            raise ConfigError(f"receive.sop_classes = {list(self.sop_classes)}: expected SOP Class UIDs, "
                              "e.g. 1.2.840.10008.5.1.4.1.1.4 (MR Image Storage)")
        if not 0 <= self.min_free_mb < float("inf"):
            raise ConfigError(f"receive.min_free_mb = {self.min_free_mb}: expected MiB >= 0")
        try:
            loopback = ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            loopback = self.host == "localhost"
        if not loopback and not (self.allowed_calling_aets or self.allowed_peers):
            raise ConfigError(f"receive.host = {self.host!r} accepts DICOM from the network: set "
                              "receive.allowed_calling_aets (--allowed-aet) and/or receive.allowed_peers "
                              "(--allowed-peer) to the scanners that may send")
        if bool(self.tls_cert) != bool(self.tls_key) or (self.tls_ca and not self.tls_cert):
            raise ConfigError("receive: TLS needs both tls_cert and tls_key (tls_ca only with them)")
