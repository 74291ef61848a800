"""Destinations for a finished study's SEG: a folder, a PACS by C-STORE, a DICOMweb server by STOW-RS.

Each ``send`` either returns (the destination acknowledged the object) or raises
:class:`DeliveryError`; retries, backoff and bookkeeping are the worker's, through the job store.
SEG UIDs are deterministic, so a send repeated after a crash stores the same object once.
"""

from __future__ import annotations

import logging
import os
import shutil
import ssl
from pathlib import Path
from typing import Any, Protocol

import pydicom
from pydicom.dataset import Dataset

from glioedge._optional import require
from glioedge.errors import GlioedgeError
from glioedge.fileio import publish_dir
from glioedge.runtime.daemon.peers import DeliveryConfig, parse_cstore

logger = logging.getLogger(__name__)

#: C-STORE statuses that mean "stored" (0x0000), "stored with coercion/warnings" (0xB0xx), or
#: "duplicate SOP instance" (0x0111, sent by some PACS for an object they already hold: SEG UIDs
#: are deterministic, so the object they hold is this one).
_STORED = {0x0000, 0xB000, 0xB006, 0xB007, 0x0111}


class DeliveryError(GlioedgeError):
    """A destination did not acknowledge an object; the message says who and why."""


class Destination(Protocol):
    """Something that accepts a study's output folder."""

    name: str

    def send(self, output_dir: Path) -> None:
        """Deliver ``output_dir/seg.dcm`` (and whatever else the destination takes)."""


class FolderDestination:
    """Copy the study's output folder to ``<folder>/<study folder name>/`` atomically."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.name = f"folder:{self.folder}"

    def send(self, output_dir: Path) -> None:
        """Copy into a hidden temporary folder, then publish it (:func:`glioedge.fileio.publish_dir`).

        Raises:
            DeliveryError: the copy failed (full disk, permissions, missing share).
        """
        # a job's folder is <study>/job-<id>: each version keeps its own folder there too
        name = (f"{output_dir.parent.name}/{output_dir.name}" if output_dir.name.startswith("job-")
                else output_dir.name)
        final = self.folder / name
        flat = name.replace("/", ".")
        tmp = self.folder / f".{flat}.{os.getpid()}.tmp"
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            for stale in self.folder.glob(f".{flat}.*.tmp*"):  # left by a killed daemon
                shutil.rmtree(stale, ignore_errors=True)
            shutil.copytree(output_dir, tmp)
            publish_dir(tmp, final)  # the same file system: final's parent is inside self.folder
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise DeliveryError(f"{self.name}: cannot copy {output_dir.name}: {exc}") from exc


class CStoreDestination:
    """Send ``seg.dcm`` to a DICOM node with C-STORE (pynetdicom) and check the status is success."""

    def __init__(self, node: str, calling_aet: str = "GLIOEDGE", timeout: float = 30.0,
                 tls: tuple[str, str, str] | None = None) -> None:
        self.aet, self.host, self.port = parse_cstore(node)
        self.calling_aet = calling_aet
        self.timeout = timeout
        self.tls = tls  # (CA file, client certificate, client key) for DICOM over TLS
        self.name = f"cstore:{self.aet}@{self.host}:{self.port}"

    def _tls_args(self) -> tuple[ssl.SSLContext, str] | None:
        if not self.tls or not self.tls[0]:
            return None
        ca, cert, key = self.tls
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            if cert:
                context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise DeliveryError(f"{self.name}: cannot load the TLS files (delivery.cstore_tls_*): "
                                f"{exc}") from exc
        return context, self.host

    def send(self, output_dir: Path) -> None:
        """Associate, C-STORE, release.

        Raises:
            DeliveryError: the association was refused or aborted, or the status is a failure.
        """
        pynetdicom = require("pynetdicom", "delivering SEGs by DICOM C-STORE")
        from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

        datasets = [_read(p, self.name) for p in dicom_outputs(output_dir)]
        ae = pynetdicom.AE(ae_title=self.calling_aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        ae.connection_timeout = self.timeout
        for ds in datasets:
            syntaxes = list(dict.fromkeys([str(ds.file_meta.TransferSyntaxUID), ExplicitVRLittleEndian,
                                           ImplicitVRLittleEndian]))
            ae.add_requested_context(ds.SOPClassUID, syntaxes)
        assoc = ae.associate(self.host, self.port, ae_title=self.aet, tls_args=self._tls_args())
        if not assoc.is_established:
            raise DeliveryError(f"{self.name}: association not established (refused, rejected, "
                                f"{'TLS handshake failed, ' if self.tls and self.tls[0] else ''}"
                                "unreachable, or none of the proposed presentation contexts "
                                f"({', '.join(sorted({ds.SOPClassUID.name for ds in datasets}))}) "
                                "accepted)")
        try:
            accepted = {str(cx.abstract_syntax) for cx in assoc.accepted_contexts}
            for ds in datasets:
                if str(ds.SOPClassUID) not in accepted:
                    raise DeliveryError(
                        f"{self.name}: the PACS accepted no presentation context for "
                        f"{ds.SOPClassUID.name} ({ds.SOPClassUID}) of SOP instance {ds.SOPInstanceUID}: "
                        "it does not take this kind of object (configure it to, or write another "
                        "segmentation_type)")
            statuses = [(ds, assoc.send_c_store(ds)) for ds in datasets]
        finally:
            if assoc.is_established:
                assoc.release()
        for ds, status in statuses:
            code = int(status.Status) if status is not None and "Status" in status else None
            if code is None:
                raise DeliveryError(f"{self.name}: no C-STORE response for SOP instance "
                                    f"{ds.SOPInstanceUID} (timeout, aborted association or no "
                                    "accepted presentation context)")
            if code not in _STORED:
                raise DeliveryError(f"{self.name}: C-STORE of SOP instance {ds.SOPInstanceUID} failed "
                                    f"with status 0x{code:04X}")
            if code != 0:
                logger.warning("C-STORE stored with warning", extra={
                    "event": "delivery", "destination": self.name, "status": f"0x{code:04X}",
                    "sop_uid": str(ds.SOPInstanceUID)})


class StowRsDestination:
    """Store ``seg.dcm`` on a DICOMweb server with STOW-RS (dicomweb-client)."""

    def __init__(self, url: str, timeout: float = 30.0, auth: tuple[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.name = f"stowrs:{self.url}"
        self._auth = auth  # ("basic", (user, password)) or ("bearer", token); never logged

    def __repr__(self) -> str:
        return f"StowRsDestination({self.url!r}, auth={self._auth[0] if self._auth else None!r})"

    def _session(self) -> Any:
        import requests

        session = requests.Session()
        if self._auth is not None:
            kind, value = self._auth
            if kind == "basic":
                session.auth = tuple(value)
            else:
                session.headers["Authorization"] = f"Bearer {value}"
        return session

    def send(self, output_dir: Path) -> None:
        """POST the SEG and check the response lists no failed instance.

        Raises:
            DeliveryError: the server is unreachable, answered an HTTP error or refused the object.
        """
        api = require("dicomweb_client", "delivering SEGs by DICOMweb STOW-RS")
        import requests

        datasets = [_read(p, self.name) for p in dicom_outputs(output_dir)]
        client = api.DICOMwebClient(self.url, session=self._session(), timeout=self.timeout)
        client.set_http_retry_params(retry=False)  # retries are the job store's, across restarts
        try:
            response = client.store_instances(datasets)
        except requests.HTTPError as exc:
            code = exc.response.status_code if exc.response is not None else None
            if code in (401, 403):
                how = {"basic": "HTTP basic (delivery.stowrs_username / stowrs_password[_env])",
                       "bearer": "the bearer token (delivery.stowrs_token[_env])"}
                used = how[self._auth[0]] if self._auth else "none configured"
                raise DeliveryError(
                    f"{self.name}: authentication refused (HTTP {code} "
                    f"{'Unauthorized' if code == 401 else 'Forbidden'}): wrong or missing "
                    f"credentials; credentials used: {used}") from None
            raise DeliveryError(f"{self.name}: STOW-RS failed: HTTP {code}: {exc}") from exc
        except (requests.RequestException, OSError, ValueError) as exc:
            raise DeliveryError(f"{self.name}: STOW-RS failed: {type(exc).__name__}: {exc}") from exc
        failed = response.get("FailedSOPSequence") if response is not None else None
        if failed:
            reasons = [f"{item.get('ReferencedSOPInstanceUID', '?')}: FailureReason "
                       f"{item.get('FailureReason', '?')}" for item in failed]
            raise DeliveryError(f"{self.name}: server refused {'; '.join(reasons)}")


def dicom_outputs(output_dir: Path) -> list[Path]:
    """The DICOM objects of a study's outputs, SEG first (then the SR when written).

    Raises:
        DeliveryError: there is no ``seg.dcm``.
    """
    seg = output_dir / "seg.dcm"
    if not seg.is_file():
        raise DeliveryError(f"{output_dir}: no seg.dcm to deliver")
    return [seg, *sorted(p for p in output_dir.glob("*.dcm") if p.name != "seg.dcm")]


def _read(path: Path, who: str) -> Dataset:
    try:
        return pydicom.dcmread(path)
    except (OSError, ValueError) as exc:
        raise DeliveryError(f"{who}: cannot read {path}: {exc}") from exc


def destinations(config: DeliveryConfig) -> dict[str, Destination]:
    """Every configured destination by its name (the key of its delivery rows)."""
    out: list[Destination] = [FolderDestination(f) for f in config.folders]
    tls = (config.cstore_tls_ca, config.cstore_tls_cert, config.cstore_tls_key)
    out += [CStoreDestination(n, config.calling_aet, config.timeout, tls if config.uses_tls(n) else None)
            for n in config.cstore]
    auth = config.stowrs_auth() if config.stowrs else None
    out += [StowRsDestination(u, config.timeout, auth) for u in config.stowrs]
    return {d.name: d for d in out}
