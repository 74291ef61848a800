"""Factories of the daemon tests: study clones, a loopback Orthanc, an in-thread daemon.

Every server is started on a free port of 127.0.0.1 and stopped afterwards; every wait is bounded.
The model and the study come from ``tests/runtime/conftest.py`` (``trained_bundle``,
``synthetic_study``).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest

from glioedge.dicom_io import deterministic_uid
from glioedge.runtime.daemon.config import DaemonConfig, load_config
from glioedge.runtime.daemon.jobs import JobStore
from glioedge.runtime.daemon.service import DB_NAME, Daemon

ORTHANC = shutil.which("Orthanc") or (
    "/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None)
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
LOOPBACK = "127.0.0.1"
#: Patient identity written by the synthetic studies; must never appear in a log.
PHI_VALUES = ("SYNTHETIC^PHANTOM", "GLIOEDGE-SYN-0001")


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], Any], timeout: float, what: str, step: float = 0.1) -> Any:
    """Poll ``condition`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


def clone_study(source: Path, target: Path, tag: str, *, drop: int | None = None,
                series_filter: str | None = None) -> str:
    """Copy a study with new Study/Series/SOP/FoR UIDs derived from ``tag``.

    Args:
        source: The study folder (one sub-folder per series).
        target: Where to write it.
        tag: Makes the UIDs unique and reproducible.
        drop: Leave out the instance with this InstanceNumber (from each series kept).
        series_filter: Keep only the sub-folder of this name.

    Returns:
        The new StudyInstanceUID.
    """
    study_uid = deterministic_uid("test-study", tag)
    for path in sorted(source.rglob("*.dcm")):
        series_dir = path.parent.relative_to(source)
        if series_filter is not None and str(series_dir) != series_filter:
            continue
        ds = pydicom.dcmread(path)
        if drop is not None and int(ds.get("InstanceNumber", -1)) == drop:
            continue
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = deterministic_uid("test-series", tag, ds.SeriesInstanceUID)
        ds.SOPInstanceUID = deterministic_uid("test-sop", tag, ds.SOPInstanceUID)
        ds.FrameOfReferenceUID = deterministic_uid("test-for", tag)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        out = target / series_dir / path.name
        out.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(out, enforce_file_format=True)
    return study_uid


def header_only_instance(path: Path) -> Path:
    """A minimal MR instance (file meta, SOP class and instance UIDs, no pixels) for
    :func:`glioedge.runtime.daemon.jobproc.read_study`."""
    from pydicom.dataset import FileMetaDataset

    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    ds.PatientName = "X"
    ds.save_as(path, enforce_file_format=True)
    return path


def daemon_config(tmp: Path, bundle: Path, **sections: dict[str, Any]) -> DaemonConfig:
    """A fast test configuration under ``tmp`` (0.3 s quiet time, short backoff)."""
    data: dict[str, Any] = {
        "watch": {"inbox": str(tmp / "inbox"), "outbox": str(tmp / "outbox"),
                  "state": str(tmp / "state"), "quarantine": str(tmp / "quarantine"),
                  "quiet_time": 0.3, "max_wait": 30.0, "poll_interval": 0.2, "retry_initial": 0.3,
                  "retry_max": 1.0},
        "model": {"bundle": str(bundle)},
        "delivery": {"backoff_initial": 0.2, "backoff_max": 1.0, "timeout": 5.0},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    overrides = {f"{s}.{k}": v for s, table in data.items() for k, v in table.items()}
    return load_config(None, overrides)


class ThreadDaemon:
    """A :class:`Daemon` serving in a thread of the test process."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.daemon = Daemon(config)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.daemon.run()
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def store(self) -> JobStore:
        """A fresh connection to the daemon's job store."""
        return JobStore(self.config.watch.state_dir / DB_NAME)

    def counts(self) -> dict[str, int]:
        """Jobs by state."""
        store = self.store()
        try:
            return store.counts()
        finally:
            store.close()

    def __enter__(self) -> ThreadDaemon:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.daemon.stop.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "daemon did not stop within 60 s of the stop event"
        if self.error is not None and exc[0] is None:
            raise self.error


class Orthanc:
    """A throw-away Orthanc on loopback ports, with the DICOMweb plugin."""

    def __init__(self, root: Path, dicom_port: int | None = None,
                 modalities: dict[str, list[Any]] | None = None,
                 users: dict[str, str] | None = None) -> None:
        self.root = root
        self.http_port = free_port()
        self.dicom_port = dicom_port or free_port()
        self.aet = "ORTHANC"
        root.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "glioedge-test", "StorageDirectory": str(root / "db"),
            "IndexDirectory": str(root / "db"), "HttpPort": self.http_port,
            "DicomPort": self.dicom_port, "DicomAet": self.aet, "RemoteAccessAllowed": False,
            "AuthenticationEnabled": bool(users), "RegisteredUsers": users or {},
            "UnknownSopClassAccepted": True,
            "DicomModalities": modalities or {}, "StableAge": 1, "HttpTimeout": 10,
            "Plugins": [str(DICOMWEB_PLUGIN)] if DICOMWEB_PLUGIN.exists() else [],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        }
        self.headers: dict[str, str] = {}
        if users:  # the test's own REST calls log in as the first user
            import base64

            user, password = next(iter(users.items()))
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        self.config_path = root / "orthanc.json"
        self.config_path.write_text(json.dumps(config))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """HTTP base URL."""
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        """DICOMweb base URL."""
        return f"{self.url}/dicom-web"

    @property
    def cstore(self) -> str:
        """``AET@HOST:PORT`` for the daemon's configuration."""
        return f"{self.aet}@{LOOPBACK}:{self.dicom_port}"

    def start(self) -> Orthanc:
        """Start and wait (at most 20 s) until the REST API answers."""
        with (self.root / "orthanc.log").open("ab") as log:
            self.proc = subprocess.Popen([ORTHANC, str(self.config_path)], stdout=log, stderr=log)
        wait_until(self._alive, 20, "Orthanc to answer on its REST port")
        return self

    def _alive(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            log = (self.root / "orthanc.log").read_text(errors="replace")[-2000:]
            pytest.fail(f"Orthanc exited with {self.proc.returncode}: {log}")
        try:
            self.get("/system")
        except (urllib.error.URLError, OSError):
            return False
        return True

    def stop(self) -> None:
        """Terminate (then, after 3 s, kill) the throw-away server."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def get(self, path: str) -> Any:
        """GET a REST resource as JSON."""
        request = urllib.request.Request(f"{self.url}{path}", headers=self.headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def post(self, path: str, body: Any) -> Any:
        """POST to a REST resource (a ``str`` body is sent as it is, anything else as JSON)."""
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data,
                                         headers={"Content-Type": "application/json", **self.headers},
                                         method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")

    def upload(self, path: Path) -> str:
        """Store a DICOM file through the REST API; returns Orthanc's instance id."""
        request = urllib.request.Request(f"{self.url}/instances", data=path.read_bytes(),
                                         headers={"Content-Type": "application/dicom", **self.headers},
                                         method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            return str(json.loads(response.read())["ID"])

    def sop_uids(self, modality: str = "SEG") -> list[str]:
        """SOP Instance UIDs of the stored instances of ``modality``."""
        found = self.post("/tools/find", {"Level": "Instance", "Query": {"Modality": modality},
                                          "Expand": True})
        return sorted(item["MainDicomTags"]["SOPInstanceUID"] for item in found)


@pytest.fixture
def orthanc_factory(tmp_path: Path) -> Iterator[Callable[..., Orthanc]]:
    """Make Orthanc servers (not started); all are stopped at the end of the test."""
    if ORTHANC is None:
        pytest.skip("Orthanc is not installed (Debian packages orthanc and orthanc-dicomweb)")
    made: list[Orthanc] = []

    def make(**kwargs: Any) -> Orthanc:
        server = Orthanc(tmp_path / f"orthanc{len(made)}", **kwargs)
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def orthanc(orthanc_factory: Callable[..., Orthanc]) -> Orthanc:
    """A started Orthanc with the DICOMweb plugin."""
    if not DICOMWEB_PLUGIN.exists():
        pytest.skip(f"Orthanc's DICOMweb plugin {DICOMWEB_PLUGIN} is missing (Debian orthanc-dicomweb)")
    return orthanc_factory().start()


def published(outbox: Path, study_uid: str) -> Path:
    """The output folder of the study's newest published version (``<outbox>/<uid>/job-<id>``)."""
    from glioedge.runtime.daemon.names import safe_uid

    folders = sorted((outbox / safe_uid(study_uid)).glob("job-*"), key=lambda p: int(p.name[4:]))
    assert folders, f"nothing published for study {study_uid} in {outbox}"
    return folders[-1]
