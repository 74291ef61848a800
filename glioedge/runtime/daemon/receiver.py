"""``glioedge receive``: a DICOM Storage SCP (pynetdicom) that writes what it receives into the inbox.

Each instance is written atomically to
``<inbox>/<study uid>/<series uid>/<sop uid>.dcm`` (UIDs sanitised) through a hidden temporary
file, so the watcher never sees a half-written file. Every storage SOP class is accepted with the
usual transfer syntaxes (uncompressed, deflated, JPEG family, JPEG 2000, JPEG-LS, RLE); Verification
(C-ECHO) answers too.
"""

from __future__ import annotations

import logging
import ssl
import threading
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset

from glioedge._optional import require
from glioedge.errors import ConfigError
from glioedge.fileio import atomic_write
from glioedge.runtime.daemon.config import ReceiveConfig
from glioedge.runtime.daemon.names import safe_uid

logger = logging.getLogger(__name__)

#: C-STORE statuses.
SUCCESS, OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xC000


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
        self._server: Any = None

    def _ae(self) -> Any:
        pynetdicom = require("pynetdicom", "receiving DICOM (glioedge receive)")
        from pydicom.uid import AllTransferSyntaxes

        ae = pynetdicom.AE(ae_title=self.config.aet)
        syntaxes = list(AllTransferSyntaxes)
        for context in pynetdicom.AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, syntaxes)
        ae.add_supported_context(pynetdicom.sop_class.Verification)
        ae.maximum_pdu_size = 0
        if self.config.allowed_calling_aets:
            ae.require_calling_aet = list(self.config.allowed_calling_aets)
        return ae

    def _on_store(self, event: Any) -> int:
        try:
            ds = event.dataset
        except Exception as exc:  # undecodable dataset: refuse it, keep serving
            logger.warning("C-STORE dataset cannot be decoded", extra={"event": "receive",
                                                                       "error": str(exc)})
            return CANNOT_UNDERSTAND
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
        self._server = self._ae().start_server((self.config.host, self.config.port), block=False,
                                               evt_handlers=handlers, ssl_context=context)
        port = int(self._server.server_address[1])
        logger.info("storage SCP listening", extra={"event": "receive", "aet": self.config.aet,
                                                    "host": self.config.host, "port": port,
                                                    "tls": context is not None,
                                                    "client_certificates": bool(self.config.tls_ca),
                                                    "inbox": str(self.inbox)})
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
