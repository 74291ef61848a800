"""The health port against a hostile browser page and a flood of connections: the ``Host`` check
(DNS rebinding to loopback), a cap on concurrent connections, and a status page that reads no
DICOM on the request thread (the patient column is read by the daemon loop)."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from glioedge.runtime.daemon.health import HealthServer, Metrics
from glioedge.runtime.daemon.jobs import JobStore
from glioedge.runtime.daemon.service import DB_NAME, Daemon
from tests.runtime.daemon.conftest import LOOPBACK, PHI_VALUES, daemon_config, wait_until


def _get(port: int, host: str | None = None, path: str = "/healthz") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host} if host is not None else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def server() -> Iterator[HealthServer]:
    srv = HealthServer(LOOPBACK, 0, Metrics(), lambda: ({}, {}), allowed_hosts=("edge-01.radiology.local",),
                       max_connections=2)
    srv.start()
    yield srv
    srv.stop()


def test_host_header_must_name_this_server(server: HealthServer) -> None:
    port = server.port
    assert _get(port, f"127.0.0.1:{port}")[0] == 200
    assert _get(port, f"localhost:{port}")[0] == 200
    assert _get(port, "EDGE-01.radiology.local")[0] == 200  # [health] allowed_hosts
    status, body = _get(port, f"attacker.example:{port}")  # a rebound name: refused
    assert status == 421 and b"allowed_hosts" in body
    assert _get(port, "")[0] == 421


def test_connections_beyond_the_cap_are_refused_and_threads_stay_bounded(server: HealthServer) -> None:
    port = server.port
    before = threading.active_count()
    idle = [socket.create_connection((LOOPBACK, port)) for _ in range(20)]  # silent clients
    try:
        time.sleep(0.5)
        assert threading.active_count() <= before + 2  # two handler threads, not twenty
        assert _get(port, "localhost")[0] == 503  # answered at once, not queued behind them
    finally:
        for s in idle:
            s.close()
    wait_until(lambda: _get(port, "localhost")[0] == 200, 15, "a slot to free up")


def test_status_page_reads_no_dicom_on_the_request_thread(tmp_path: Path, synthetic_study: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    config = daemon_config(tmp_path, tmp_path / "bundle", status_page={"show_patient": True})
    daemon = Daemon(config)
    state = config.watch.state_dir
    state.mkdir(parents=True)
    store = JobStore(state / DB_NAME)
    files = [str(p) for p in sorted(synthetic_study.rglob("*.dcm"))[:3]]
    assert store.add_job("k#1", "1.2.3", files) is not None
    db, lock = JobStore(state / DB_NAME, shared=True), threading.Lock()
    readers: list[str] = []
    real = pydicom.dcmread

    def recording(*args: object, **kwargs: object) -> object:
        readers.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", recording)
    server = HealthServer(LOOPBACK, 0, daemon.metrics, lambda: ({}, {}), pages=daemon._pages(db, lock))
    server.start()
    try:
        for _ in range(5):
            status, page = _get(server.port, "localhost", "/")
            assert status == 200 and b"<th>Patient</th>" in page
        assert readers == []  # five page loads, no DICOM read
        assert PHI_VALUES[0].encode() not in page  # not read yet: pending
        daemon.refresh_patients(store)  # what the daemon loop does after a scan or a job
        assert readers and set(readers) == {threading.current_thread().name}
        status, page = _get(server.port, "localhost", "/")
        assert PHI_VALUES[0].encode() in page and PHI_VALUES[1].encode() in page
        assert set(readers) == {threading.current_thread().name}
    finally:
        server.stop()
        store.close()
        db.close()
