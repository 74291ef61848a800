"""``glioedge receive``: a DICOM Storage SCP (pynetdicom) that writes what it receives into the inbox.

Each instance is written atomically to
``<inbox>/<study uid>/<series uid>/<sop uid>.dcm`` (UIDs sanitised) through a hidden temporary
file, so the watcher never sees a half-written file. The SOP classes of ``[receive] sop_classes``
(MR and Enhanced MR image storage by default: what the daemon processes) are accepted with the
usual transfer syntaxes (uncompressed, deflated, JPEG family, JPEG 2000, JPEG-LS, RLE); Verification
(C-ECHO) answers too. What comes in is filtered at each step: the peer's address
(``allowed_peers``, before any DICOM is read), the calling AE title (``allowed_calling_aets``),
the SOP class (not negotiated, and refused with 0x0122 if a dataset claims another), and the disk
(below ``min_free_mb`` free, "out of resources" 0xA700 instead of a full disk).
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
import ssl
import threading
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset

from glioedge._optional import require
from glioedge.errors import ConfigError
from glioedge.fileio import atomic_write
from glioedge.runtime.daemon.names import safe_uid
from glioedge.runtime.daemon.peers import ReceiveConfig

logger = logging.getLogger(__name__)

#: C-STORE statuses.
SUCCESS, OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xC000
SOP_CLASS_NOT_SUPPORTED = 0x0122


def instance_path(inbox: Path, ds: Dataset) -> Path:
    """Where an instance goes: ``<inbox>/<study>/<series>/<sop>.dcm`` from sanitised UIDs."""
    return (inbox / safe_uid(ds.get("StudyInstanceUID", "")) / safe_uid(ds.get("SeriesInstanceUID", ""))
            / f"{safe_uid(ds.get('SOPInstanceUID', ''))}.dcm")


def write_instance(inbox: Path, ds: Dataset, file_meta: FileMetaDataset) -> Path:
    """Write one received instance atomically (temporary file, fsync, rename).

    Raises:
        OSError: the inbox is not writable or full.
    """
    path = instance_path(inbox, ds)
    ds.file_meta = file_meta
    try:
        atomic_write(path, lambda fh: ds.save_as(fh, enforce_file_format=True))
    except FileNotFoundError:
        # ``glioedge purge`` removed the (empty) series folder between its creation and the
        # temporary file: create it again, once
        atomic_write(path, lambda fh: ds.save_as(fh, enforce_file_format=True))
    return path


class Receiver:
    """A Storage SCP bound to ``config.host:config.port`` writing into ``inbox``.

    Args:
        config: AE title, address, port and allowed calling AE titles.
        inbox: Target folder.
    """

    def __init__(self, config: ReceiveConfig, inbox: str | Path) -> None:
        self.config = config
        self.inbox = Path(inbox)
        self.received = 0
        self.refused: dict[str, int] = {"peer": 0, "sop_class": 0, "disk": 0}
        self._server: Any = None
        self._peers = [ipaddress.ip_network(p, strict=False) for p in config.allowed_peers]
        self._sop_classes = frozenset(config.sop_classes)

    def _ae(self) -> Any:
        pynetdicom = require("pynetdicom", "receiving DICOM (glioedge receive)")
        from pydicom.uid import AllTransferSyntaxes

        ae = pynetdicom.AE(ae_title=self.config.aet)
        syntaxes = list(AllTransferSyntaxes)
        for sop_class in self.config.sop_classes:
            ae.add_supported_context(sop_class, syntaxes)
        ae.add_supported_context(pynetdicom.sop_class.Verification)
        ae.maximum_pdu_size = 0
        if self.config.allowed_calling_aets:
            ae.require_calling_aet = list(self.config.allowed_calling_aets)
        return ae

    def _peer_allowed(self, request: Any, client_address: Any) -> bool:
        """``socketserver``'s ``verify_request``: False closes the connection before any PDU."""
        if not self._peers:
            return True
        try:
            address = ipaddress.ip_address(str(client_address[0]).split("%")[0])
        except (ValueError, IndexError, TypeError):
            address = None
        if address is not None and any(address in net for net in self._peers):
            return True
        self.refused["peer"] += 1
        logger.warning("connection refused: peer address not in receive.allowed_peers",
                       extra={"event": "receive", "peer": str(client_address[0])})
        return False

    def _disk_low(self) -> bool:
        try:
            free = shutil.disk_usage(self.inbox).free
        except OSError:
            return False  # the write itself will say what is wrong
        return free < self.config.min_free_mb * 2**20

    def _on_store(self, event: Any) -> int:
        sop_class = str(event.request.AffectedSOPClassUID or "")
        if sop_class not in self._sop_classes:
            self.refused["sop_class"] += 1
            logger.warning("C-STORE refused: SOP class not in receive.sop_classes", extra={
                "event": "receive", "sop_class": sop_class,
                "calling_aet": str(event.assoc.requestor.ae_title)})
            return SOP_CLASS_NOT_SUPPORTED
        if self._disk_low():
            self.refused["disk"] += 1
            logger.error("C-STORE refused: free space below receive.min_free_mb", extra={
                "event": "receive", "min_free_mb": self.config.min_free_mb, "inbox": str(self.inbox)})
            return OUT_OF_RESOURCES
        try:
            ds = event.dataset
        except Exception as exc:  # undecodable dataset: refuse it, keep serving
            logger.warning("C-STORE dataset cannot be decoded", extra={"event": "receive",
                                                                       "error": str(exc)})
            return CANNOT_UNDERSTAND
        if str(ds.get("SOPClassUID", "")) != sop_class:
            self.refused["sop_class"] += 1
            logger.warning("C-STORE refused: the dataset's SOP Class UID differs from the "
                           "request's", extra={"event": "receive", "sop_class": sop_class})
            return SOP_CLASS_NOT_SUPPORTED
        try:
            path = write_instance(self.inbox, ds, event.file_meta)
        except OSError as exc:
            logger.error("cannot write received instance", extra={
                "event": "receive", "sop_uid": str(ds.get("SOPInstanceUID", "")), "error": str(exc)})
            return OUT_OF_RESOURCES
        self.received += 1
        logger.info("instance received", extra={
            "event": "receive", "study_uid": str(ds.get("StudyInstanceUID", "")),
            "series_uid": str(ds.get("SeriesInstanceUID", "")),
            "sop_uid": str(ds.get("SOPInstanceUID", "")),
            "calling_aet": str(event.assoc.requestor.ae_title), "path": str(path)})
        return SUCCESS

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server's TLS context (None without ``tls_cert``).

        Raises:
            ConfigError: a certificate, key or CA file cannot be read or does not match.
        """
        c = self.config
        if not c.tls_cert:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(c.tls_cert, c.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"receive.tls_cert {c.tls_cert} / receive.tls_key {c.tls_key}: cannot "
                              f"load the certificate and key: {exc}") from exc
        if c.tls_ca:
            try:
                context.load_verify_locations(c.tls_ca)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"receive.tls_ca {c.tls_ca}: cannot load the CA: {exc}") from exc
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def start(self) -> int:
        """Listen in background threads (over TLS when configured).

        Returns:
            The bound port (useful with ``port = 0``).

        Raises:
            ConfigError: the TLS files cannot be loaded.
        """
        pynetdicom = require("pynetdicom", "receiving DICOM (glioedge receive)")
        self.inbox.mkdir(parents=True, exist_ok=True)
        handlers = [(pynetdicom.evt.EVT_C_STORE, self._on_store)]
        context = self.ssl_context()
        ae = self._ae()
        server = ae.make_server((self.config.host, self.config.port), evt_handlers=handlers,
                                ssl_context=context,
                                server_class=pynetdicom.transport.ThreadedAssociationServer)
        server.verify_request = self._peer_allowed  # before the first connection is accepted
        threading.Thread(target=server.serve_forever, name="glioedge-receive", daemon=True).start()
        ae._servers.append(server)  # as AE.start_server does: server.shutdown() unregisters it
        self._server = server
        port = int(self._server.server_address[1])
        c = self.config
        logger.info("storage SCP listening", extra={
            "event": "receive", "aet": c.aet, "host": c.host, "port": port, "tls": context is not None,
            "client_certificates": bool(c.tls_ca), "allowed_calling_aets": list(c.allowed_calling_aets),
            "allowed_peers": list(c.allowed_peers), "sop_classes": list(c.sop_classes),
            "min_free_mb": c.min_free_mb, "inbox": str(self.inbox)})
        return port

    def stop(self) -> None:
        """Stop listening and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def serve(self, stop: threading.Event) -> int:
        """Run until ``stop`` is set (SIGTERM).

        Returns:
            Exit status 0.
        """
        self.start()
        try:
            while not stop.wait(1.0):
                pass
        finally:
            self.stop()
        return 0
