"""Fast tests of the daemon's parts: configuration, job store, names, logs, metrics, quarantine."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from glioedge.errors import ConfigError
from glioedge.runtime.daemon.config import DaemonConfig, load_config
from glioedge.runtime.daemon.health import HealthServer, Metrics
from glioedge.runtime.daemon.jobs import DeliveryState, JobState, JobStore
from glioedge.runtime.daemon.logging import JsonFormatter, PhiFilter
from glioedge.runtime.daemon.names import safe_uid
from glioedge.runtime.daemon.peers import parse_cstore
from glioedge.runtime.daemon.quarantine import quarantine
from tests.runtime.daemon.conftest import LOOPBACK

TOML = """
[watch]
inbox = "/data/inbox"
outbox = "/data/outbox"
quiet_time = 12.5
[model]
bundle = "/models/b"
[delivery]
cstore = ["PACS@127.0.0.1:4242"]
stowrs = ["http://127.0.0.1:8042/dicom-web"]
[segmenter]
qa_png = true
"""


def test_config_file_then_cli_overrides(tmp_path: Path) -> None:
    path = tmp_path / "glioedge.toml"
    path.write_text(TOML)
    config = load_config(path, {"watch.quiet_time": 1.0, "health.port": 9100, "watch.max_wait": None})
    assert config.watch.quiet_time == 1.0  # the command line wins
    assert config.watch.max_wait == 1800.0  # default kept
    assert config.delivery.cstore == ("PACS@127.0.0.1:4242",)
    assert config.segmenter == {"qa_png": True}
    assert config.watch.state_dir == Path("/data/outbox/_state")
    assert DaemonConfig.from_dict(config.to_dict()) == config  # round trip


@pytest.mark.parametrize(("data", "needle"), [
    ({"watch": {"quiet_tme": 1}}, "quiet_tme"),
    ({"wach": {}}, "wach"),
    ({"watch": {"quiet_time": "soon"}}, "watch.quiet_time"),
    ({"watch": {"quiet_time": -1}}, "watch.quiet_time"),
    ({"delivery": {"cstore": ["PACS@host"]}}, "AET@HOST:PORT"),
    ({"delivery": {"stowrs": ["ftp://x"]}}, "http"),
    ({"log": {"format": "xml"}}, "log.format"),
    ({"watch": {"poll_interval": 0}}, "watch.poll_interval"),
    ({"watch": {"poll_interval": -2}}, "watch.poll_interval"),
    ({"watch": {"max_wait": 0}}, "watch.max_wait"),
    ({"watch": {"max_wait": 10, "quiet_time": 30}}, "watch.max_wait"),
    ({"watch": {"retry_max": -1}}, "watch.retry_max"),
    ({"watch": {"max_attempts": 0}}, "watch.max_attempts"),
    ({"delivery": {"timeout": 0}}, "delivery.timeout"),
    ({"delivery": {"backoff_factor": 0.5}}, "delivery.backoff_factor"),
    ({"delivery": {"max_attempts": 0}}, "delivery.max_attempts"),
    ({"delivery": {"calling_aet": "A" * 17}}, "delivery.calling_aet"),
    ({"health": {"port": 70000}}, "health.port"),
    ({"log": {"level": "LOUD"}}, "log.level"),
])
def test_config_errors_name_the_key(data: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        DaemonConfig.from_dict(data)


@pytest.mark.parametrize(("inbox", "outbox", "key"), [
    ("/data/inbox", "/data", "watch.outbox"),
    ("/data/inbox", "/data/inbox", "watch.outbox"),
    ("in", ".", "watch.outbox"),  # what `--out ''` gives
])
def test_an_outbox_containing_the_inbox_is_refused_naming_both(inbox: str, outbox: str, key: str) -> None:
    config = DaemonConfig.from_dict({"watch": {"inbox": inbox, "outbox": outbox},
                                     "model": {"bundle": "/b"}})
    with pytest.raises(ConfigError) as info:
        config.require_folders()
    message = str(info.value)
    assert key in message and str(Path(inbox).resolve()) in message
    assert str(Path(outbox).resolve()) in message


def test_state_or_quarantine_containing_the_inbox_is_refused_but_an_outbox_inside_is_fine() -> None:
    nested = DaemonConfig.from_dict({"watch": {"inbox": "/d/in", "outbox": "/d/in/out"},
                                     "model": {"bundle": "/b"}})
    nested.require_folders()  # the outbox inside the inbox is excluded from the scan
    with pytest.raises(ConfigError, match=r"watch\.state"):
        DaemonConfig.from_dict({"watch": {"inbox": "/d/in", "outbox": "/o", "state": "/d"},
                                "model": {"bundle": "/b"}}).require_folders()


def test_defaults_need_folders_and_bundle() -> None:
    with pytest.raises(ConfigError, match=r"watch.inbox.*watch.outbox.*model.bundle"):
        DaemonConfig().require_folders()
    assert parse_cstore("ORTHANC@127.0.0.1:4242") == ("ORTHANC", "127.0.0.1", 4242)
    assert DaemonConfig().delivery.backoff(1) == 5.0
    assert DaemonConfig().delivery.backoff(30) == 600.0


def test_job_life_recovery_and_max_attempts(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    first = store.add_job("s1#a", "1.2.3", ["/in/a.dcm"])
    assert first is not None
    assert store.add_job("s1#a", "1.2.3", ["/in/a.dcm"]) is None  # same key: never twice
    job = store.claim(max_attempts=3)
    assert job is not None and job.state is JobState.RUNNING and job.attempts == 1
    # the daemon is killed here: a new process recovers the running job; its start stays counted
    # (a job that hangs until the daemon is killed must not run first again forever)
    store.close()
    store = JobStore(tmp_path / "jobs.sqlite")
    assert store.recover() == 1
    job = store.claim(max_attempts=3)
    assert job is not None and job.attempts == 2
    store.requeue(job.id, "boom", 0.0)  # a failed attempt (a crash of the job) counts
    job = store.claim(max_attempts=3)
    assert job is not None and job.attempts == 3
    store.requeue(job.id, "boom", 0.0)
    assert store.claim(max_attempts=3) is None  # fourth start refused
    assert store.job(job.id).state is JobState.FAILED
    assert "gave up after 3 attempts" in store.job(job.id).error
    store.close()


def test_deliveries_close_the_job_once_all_acknowledged(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    job_id = store.add_job("k", "1.2", ["/in/DOE^JOHN/a.dcm"])
    assert job_id is not None
    store.claim(3)
    store.outputs_written(job_id, "/out/1.2", "2.25.1", ["a", "b"])
    assert store.job(job_id).state is JobState.DELIVERING
    assert store.delivery_result(job_id, "a", ok=True) is JobState.DELIVERING
    assert store.delivery_result(job_id, "b", ok=False, error="down", retry_in=60) is JobState.DELIVERING
    assert [d.destination for d in store.due_deliveries()] == []  # b not due for 60 s
    assert [d.destination for d in store.due_deliveries(now=time.time() + 61)] == ["b"]
    assert store.delivery_result(job_id, "b", ok=False, error="refused", retry_in=None) is JobState.FAILED
    assert "b: refused" in store.job(job_id).error
    states = {d.destination: d.state for d in store.deliveries(job_id)}
    assert states == {"a": DeliveryState.ACKED, "b": DeliveryState.FAILED}
    assert store.job(job_id).files == ("/in/DOE^JOHN/a.dcm",)
    store.forget_files(job_id)  # keep_inputs = false: the paths go with the purged inputs
    assert store.job(job_id).files == () and store.has_key("k")
    store.close()


def test_refunded_attempts_never_exhaust_a_job(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    job_id = store.add_job("k", "1.2", [])
    assert job_id is not None
    for _ in range(5):
        job = store.claim(max_attempts=2)
        assert job is not None
        store.requeue(job_id, "outbox is full", 0.0, refund=True)
    assert store.job(job_id).state is JobState.QUEUED
    assert store.job(job_id).error == "outbox is full"
    store.close()


@pytest.mark.parametrize("uid", ["../../etc/passwd", "1.2/../3", "", "1.2.3" * 20, "abc", "1..2"])
def test_safe_uid_never_builds_a_path(uid: str) -> None:
    name = safe_uid(uid)
    assert "/" not in name and ".." not in name and name not in ("", ".", "..")
    assert len(name) <= 64
    assert safe_uid("1.2.840.10008.1") == "1.2.840.10008.1"


@contextlib.contextmanager
def _json_logger(name: str, stream: io.StringIO) -> Iterator[logging.Logger]:
    """A logger writing the daemon's JSON lines, through its PHI filter, into ``stream``."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(PhiFilter())
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield logger
    finally:
        logger.removeHandler(handler)


def test_json_logs_refuse_phi_keys() -> None:
    stream = io.StringIO()
    with _json_logger("glioedge.test.phi", stream) as logger:
        logger.warning("study seen", extra={"study_uid": "1.2.3", "patient_name": "DOE^JANE",
                                            "PatientID": "12345", "birth_date": "19700101"})
    record = json.loads(stream.getvalue())
    assert record["study_uid"] == "1.2.3"
    assert record["patient_name"] == record["PatientID"] == record["birth_date"] == "[refused]"
    assert "DOE" not in stream.getvalue() and "12345" not in stream.getvalue()


def test_health_and_metrics_over_http() -> None:
    metrics = Metrics()
    metrics.observe("inference", 0.3)
    metrics.observe("inference", 4.0)
    metrics.inc("deliveries", destination="cstore:PACS@127.0.0.1:4242")
    server = HealthServer(LOOPBACK, 0, metrics,
                          lambda: ({"queued": 2, "done": 5}, {("cstore:X", "pending"): 1}))
    server.start()
    try:
        base = f"http://{LOOPBACK}:{server.port}"
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as r:
            health = json.loads(r.read())
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as r:
            text = r.read().decode()
            ctype = r.headers["Content-Type"]
    finally:
        server.stop()
    assert health["status"] == "ok" and health["jobs"]["done"] == 5
    assert ctype.startswith("text/plain; version=0.0.4")
    from prometheus_client.parser import text_string_to_metric_families

    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("glioedge_jobs", (("state", "queued"),))] == 2
    assert samples[("glioedge_stage_seconds_bucket", (("le", "0.5"), ("stage", "inference")))] == 1
    assert samples[("glioedge_stage_seconds_count", (("stage", "inference"),))] == 2
    assert samples[("glioedge_delivery_rows", (("destination", "cstore:X"), ("state", "pending")))] == 1
    assert samples[("glioedge_deliveries_total", (("destination", "cstore:PACS@127.0.0.1:4242"),))] == 1


def test_healthz_reports_degraded_while_results_cannot_be_written() -> None:
    metrics = Metrics()
    server = HealthServer(LOOPBACK, 0, metrics, lambda: ({}, {}))
    metrics.set_problem("outbox", "outbox is full (/data/outbox): [ENOSPC]")
    code, _, body = server.respond("/healthz")
    assert code == 503 and json.loads(body)["status"] == "degraded"
    assert "ENOSPC" in json.loads(body)["problems"]["outbox"]
    metrics.set_problem("outbox", None)
    code, _, body = server.respond("/healthz")
    server.stop()
    assert code == 200 and json.loads(body)["status"] == "ok"


def test_json_logs_scrub_patient_values_and_inbox_paths_wherever_they_appear() -> None:
    import pydicom

    from glioedge.runtime.daemon.logging import register_private_folder, remember_phi

    ds = pydicom.Dataset()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "ROE^RICHARDA", "X9931", "19550505"
    remember_phi(ds)
    register_private_folder("/srv/glioedge-inbox")
    stream = io.StringIO()
    with _json_logger("glioedge.test.values", stream) as logger:
        logger.warning("cannot read /srv/glioedge-inbox/Roe Richarda/IM1 of %s", "ROE^RICHARDA",
                       extra={"error": {"file": "x9931 X9931 born 19550505"}})
        try:
            raise ValueError("Richarda's file")
        except ValueError:
            logger.exception("failed")
    text = stream.getvalue()
    for leak in ("ROE", "RICHARDA", "Roe", "Richarda", "X9931", "19550505", "/srv/glioedge-inbox/"):
        assert leak not in text, leak
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["message"].startswith("cannot read <inbox file ")
    assert "ValueError" in second["exception"]


def test_healthz_reports_a_stalled_loop() -> None:
    metrics = Metrics()
    metrics.last_tick -= 1000
    server = HealthServer(LOOPBACK, 0, metrics, lambda: ({}, {}), stall_after=10, job_limit=3600)
    code, _, body = server.respond("/healthz")
    assert code == 503 and json.loads(body)["status"] == "stalled"
    metrics.busy_since = time.time() - 600  # a long inference in progress is not a stall
    code, _, body = server.respond("/healthz")
    server.stop()
    assert code == 200 and json.loads(body)["job_running_s"] >= 600


def test_quarantine_copies_and_never_moves(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "s" / "a").mkdir(parents=True)
    files = [inbox / "s" / "a" / "1.dcm", inbox / "s" / "a" / "2.dcm"]
    for f in files:
        f.write_bytes(b"x" * 10)
    folder = quarantine(tmp_path / "q", "../../evil", files, "no T1CE series", inbox=inbox)
    assert folder.parent == tmp_path / "q"
    assert all(f.exists() for f in files)  # inputs untouched
    reason = json.loads((folder / "reason.json").read_text())
    assert reason["reason"] == "no T1CE series" and len(reason["files"]) == 2
    assert (folder / "files" / reason["files"][0]["file"]).read_bytes() == b"x" * 10
    assert (folder / "reason.txt").read_text().strip() == "no T1CE series"


def test_daemon_imports_without_torch() -> None:
    code = ("import sys; sys.modules['torch'] = None\n"
            "import glioedge.runtime.daemon.commands, glioedge.runtime.daemon.service\n"
            "import glioedge.runtime.daemon.receiver, glioedge.runtime.daemon.worker\n"
            "import glioedge.runtime.daemon.jobproc\n"
            "import glioedge.runtime.segmenter\n"
            "assert sys.modules['torch'] is None")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def test_seg_identity_follows_the_source_instances() -> None:
    import pydicom

    from glioedge.runtime.segmenter import source_identity

    def instances(*uids: str) -> list[pydicom.Dataset]:
        out = []
        for uid in uids:
            ds = pydicom.Dataset()
            ds.SOPInstanceUID = uid
            out.append(ds)
        return out

    same = source_identity(instances("1.2.1", "1.2.2", "1.2.3"))
    assert source_identity(instances("1.2.3", "1.2.1", "1.2.2")) == same  # order does not matter
    assert source_identity(instances("1.2.1", "1.2.2")) != same  # an instance more or less does
    assert source_identity(instances("1.2.1", "1.2.2", "1.2.4")) != same


def test_any_exception_of_a_send_is_a_failed_attempt_with_backoff(tmp_path: Path) -> None:
    """The worker's policy for a destination that raises something unexpected (pynetdicom's
    ValueError for a refused context is the known case; the real SCP is in test_orthanc)."""
    from glioedge.runtime.daemon.worker import Worker

    class Raising:
        name = "odd"

        def send(self, output_dir: Path) -> None:
            raise ValueError("No presentation context for 'Comprehensive 3D SR Storage'")

    config = DaemonConfig.from_dict({"watch": {"outbox": str(tmp_path / "out")},
                                     "delivery": {"backoff_initial": 30.0, "max_attempts": 2}})
    store = JobStore(tmp_path / "jobs.sqlite")
    job_id = store.add_job("k", "1.2", [])
    assert job_id is not None
    store.claim(3)
    store.outputs_written(job_id, str(tmp_path / "out" / "1.2"), "2.25.1", ["odd"])
    worker = Worker(config, store, None, Metrics(), {"odd": Raising()})
    assert worker.deliver_due() == 1
    row = store.deliveries(job_id)[0]
    assert row.state is DeliveryState.PENDING and row.attempts == 1
    assert row.error.startswith("odd: ValueError: No presentation context")
    assert row.next_attempt_at > time.time() + 25  # backed off, not re-sent on the next loop
    assert worker.deliver_due() == 0
    store.close()
