"""Jobs that hang or die (issue 17, items 6-9): a time limit that kills the whole process tree,
temporary images removed on every path, a job never stuck in ``running``, ``--once`` that never
exits 0 over a problem nor loops forever, nested inboxes refused, clients that hang up ignored."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from glioedge.runtime.daemon.config import load_config
from glioedge.runtime.daemon.health import HealthServer, Metrics
from glioedge.runtime.daemon.jobproc import JobProcess, _run_job
from glioedge.runtime.daemon.jobs import JobState, JobStore
from tests.runtime.daemon.conftest import LOOPBACK, header_only_instance, wait_until

ROOT = Path(__file__).resolve().parents[3]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    status = Path(f"/proc/{pid}/status")
    try:
        return "zombie" in status.read_text()
    except OSError:
        return True


def _pids(path: Path) -> list[int]:
    return [pid for line in path.read_text().splitlines() if line.strip() for pid in json.loads(line)]


def _config(tmp: Path, **watch: Any) -> Any:
    return load_config(None, {"watch.inbox": str(tmp / "inbox"), "watch.outbox": str(tmp / "outbox"),
                              "watch.state": str(tmp / "state"), "model.bundle": "unused",
                              **{f"watch.{k}": v for k, v in watch.items()}})


def _child(mode: str) -> list[str]:
    return [sys.executable, "-m", "tests.runtime.daemon.hang_tools", "child", mode]


# ---- the inference child's process handling ------------------------------------------------------
def test_a_job_past_its_limit_is_killed_with_its_whole_tree_and_its_temporary_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(JobProcess, "command", _child("hang"))
    monkeypatch.chdir(ROOT)
    config = _config(tmp_path)
    jobs = JobProcess(config)
    jobs.start()
    t0 = time.monotonic()
    reply = jobs.run({"op": "run", "pids_file": str(tmp_path / "pids")}, timeout=2.0)
    took = time.monotonic() - t0
    assert reply["status"] == "timeout" and "time limit of 2 s" in reply["message"]
    assert took < 15
    pids = _pids(tmp_path / "pids")  # the child, a grandchild in its own session, one in its group
    assert len(pids) == 3
    wait_until(lambda: all(_gone(p) for p in pids), 10, "the whole tree to die")
    assert list((config.watch.state_dir / "work").iterdir()) == []  # the patient's image went
    jobs.close()


def test_a_malformed_reply_fails_the_job_instead_of_waiting_forever(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(JobProcess, "command", _child("garbage"))
    monkeypatch.chdir(ROOT)
    jobs = JobProcess(_config(tmp_path))
    jobs.start()
    child = jobs.pid
    replies: list[dict[str, Any]] = []
    thread = threading.Thread(target=lambda: replies.append(jobs.run({"op": "run"})), daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive(), "the parent still waits on a child that answered nonsense"
    assert replies[0]["status"] == "error" and "malformed" in replies[0]["message"]
    assert child is not None
    wait_until(lambda: _gone(child), 10, "the nonsense-speaking child to be killed")


def test_a_non_oserror_while_writing_outputs_is_a_failed_attempt_not_the_childs_end(
        tmp_path: Path) -> None:
    class Result:
        timings: dict[str, float] = {}  # noqa: RUF012

        def write(self, folder: Path) -> None:
            (folder / "seg.dcm").write_bytes(b"half")
            raise ValueError("(0062,0002) cannot be encoded")

    class Segmenter:
        def segment_study(self, datasets: Any, rules: Any = None) -> Result:
            return Result()

    study = header_only_instance(tmp_path / "in.dcm")
    staging = tmp_path / "staging"
    reply = _run_job(Segmenter(), None, {"key": "k", "staging": str(staging), "files": [str(study)],
                                         "job_id": 1}, OrderedDict())
    assert reply["status"] == "error" and "ValueError" in reply["message"]
    assert "writing the outputs failed" in reply["message"]
    assert not staging.exists()  # no half-written outputs left


def test_a_brain_mask_command_that_times_out_takes_its_children_and_temp_files_with_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from glioedge.dicom_io import Volume
    from glioedge.errors import BackendError
    from glioedge.runtime.brain_mask import command_mask

    monkeypatch.chdir(ROOT)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    volumes = {"flair": Volume(np.ones((8, 8, 8), np.float32), np.eye(4))}
    pidfile = tmp_path / "pids"
    command = f"{sys.executable} -m tests.runtime.daemon.hang_tools mask {pidfile} {{input}} {{output}}"
    with pytest.raises(BackendError, match="timed out"):
        command_mask(volumes, "flair", command, timeout_s=3.0)
    pids = _pids(pidfile)
    assert len(pids) == 3
    # the tool and the grandchild in its process group die; the one that left the group is the
    # daemon's to kill (its marker), tested with the daemon below
    wait_until(lambda: _gone(pids[0]) and _gone(pids[2]), 10, "the command's process group to die")
    os.kill(pids[1], 9)
    assert list(scratch.iterdir()) == []


def test_start_up_sweeps_what_a_killed_daemon_left(tmp_path: Path) -> None:
    """After ``kill -9`` of the daemon its inference child dies (PDEATHSIG) but a brain-mask
    command and the NIfTI copies of a study may be left: the next start kills and removes them."""
    from glioedge.runtime.daemon import procs

    state = tmp_path / "state"
    env = procs.child_environment(state)
    leftover = subprocess.Popen(["sleep", "300"], env=env, start_new_session=True)
    other = subprocess.Popen(["sleep", "300"])  # not ours: left alone
    work = state / procs.WORK_DIR
    (work / "glioedge-bet-x").mkdir()
    (work / "glioedge-bet-x" / "flair.nii.gz").write_bytes(b"patient image")
    try:
        found = procs.sweep(state)
        assert found["processes_killed"] >= 1 and found["temporary_entries_removed"] == 1
        leftover.wait(timeout=10)
        assert leftover.returncode == -9
        assert other.poll() is None
        assert list(work.iterdir()) == []
    finally:
        other.kill()
        other.wait()
        if leftover.poll() is None:
            leftover.kill()


# ---- the job store ------------------------------------------------------------------------------
def test_a_job_interrupted_by_a_killed_daemon_is_charged_and_goes_behind_the_others(
        tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    hanging = store.add_job("a#1", "1.2.3", ["/in/a.dcm"])
    other = store.add_job("b#1", "1.2.4", ["/in/b.dcm"])
    job = store.claim(max_attempts=2)
    assert job is not None and job.id == hanging
    store.close()  # kill -9 here
    store = JobStore(tmp_path / "jobs.sqlite")
    assert store.recover(delay=60) == 1
    assert store.job(hanging).attempts == 1  # the start stays counted
    nxt = store.claim(max_attempts=2)
    assert nxt is not None and nxt.id == other  # the queue moves on
    store.close()


class _FailingCommit:
    """A real SQLite connection whose next COMMIT fails (as on a full or failing disk)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.fail = 1

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT" and self.fail:
            self.fail -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def test_a_failed_commit_is_rolled_back_and_the_store_stays_usable(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    store._db = _FailingCommit(store._db)  # type: ignore[assignment]
    with pytest.raises(sqlite3.OperationalError):
        store.add_job("a#1", "1.2.3", ["/in/a.dcm"])
    assert not store._db.in_transaction
    assert store.jobs() == []  # rolled back
    assert store.add_job("a#1", "1.2.3", ["/in/a.dcm"]) is not None  # next transaction works
    store.close()


def test_an_unexpected_exception_after_claim_requeues_the_job_without_a_restart(
        tmp_path: Path) -> None:
    from glioedge.runtime.daemon.worker import Worker

    config = _config(tmp_path, retry_initial=0.0)
    store = JobStore(tmp_path / "jobs.sqlite")
    job_id = store.add_job("a#1", "1.2.3", ["/in/a.dcm"])
    worker = Worker(config, store, None, Metrics(), {})
    calls = []

    def broken(job: Any) -> JobState:
        calls.append(job.id)
        if len(calls) == 1:
            raise KeyError("a bug")  # not an OSError: logged, the loop goes on
        store._db = _FailingCommit(raw)  # type: ignore[assignment]
        store._db.fail = 2  # the store fails too: the job cannot even be put back now
        raise sqlite3.OperationalError("database is locked")

    raw = store._db
    worker.process = broken  # type: ignore[method-assign]
    assert worker.run_next() is True
    job = store.job(job_id)
    assert job.state is JobState.QUEUED and job.attempts == 1 and "KeyError" in job.error
    with pytest.raises(sqlite3.OperationalError):  # raised for the loop to back off
        worker.run_next()
    store._db = raw
    assert store.job(job_id).state is JobState.RUNNING  # could not be released yet ...
    worker.process = lambda job: JobState.DONE  # type: ignore[method-assign]
    assert worker.run_next() is True  # ... it is, before the next claim, which runs it again
    assert calls == [job_id, job_id]
    assert store.job(job_id).attempts == 3
    store.close()


# ---- health and the status page -----------------------------------------------------------------
def test_healthz_names_the_job_that_ran_past_its_limit() -> None:
    metrics = Metrics()
    server = HealthServer(LOOPBACK, 0, metrics, lambda: ({}, {}), stall_after=10)
    metrics.busy_since, metrics.busy_job, metrics.busy_limit = time.time() - 5, 7, 100.0
    body = server.health()
    assert body["status"] == "ok" and body["job"]["id"] == 7 and body["job"]["limit_s"] == 100.0
    metrics.last_tick -= 600
    metrics.busy_since = time.time() - 600
    body = server.health()
    server.stop()
    assert body["status"] == "stalled" and body["stalled_job"] == 7


def test_clients_that_hang_up_leave_no_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    def slow_page(path: str, health: dict[str, Any]) -> tuple[int, str, bytes]:
        time.sleep(0.3)  # the client is gone by now
        return 200, "text/html", b"x" * 2_000_000

    server = HealthServer(LOOPBACK, 0, Metrics(), lambda: ({}, {}), pages=slow_page)
    server.start()
    try:
        for _ in range(5):
            client = socket.create_connection((LOOPBACK, server.port))
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()  # reset
        time.sleep(1.5)
    finally:
        server.stop()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "BrokenPipe" not in err and "ConnectionReset" not in err


# ---- the daemon, with the real inference child ----------------------------------------------------
def _hanging_mask(tmp: Path, bundle: Path, pidfile: Path, **watch: Any) -> Any:
    from tests.runtime.daemon.conftest import daemon_config

    command = f"{sys.executable} -m tests.runtime.daemon.hang_tools mask {pidfile} {{input}} {{output}}"
    return daemon_config(tmp, bundle, watch=watch,
                         segmenter={"brain_mask": "command", "brain_mask_command": command})


@pytest.mark.slow
def test_a_hung_brain_mask_command_is_killed_at_the_limit_and_the_queue_moves_on(
        tmp_path: Path, trained_bundle: Path, synthetic_study: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.runtime.daemon.conftest import ThreadDaemon, clone_study

    monkeypatch.chdir(ROOT)
    for n in range(2):
        clone_study(synthetic_study, tmp_path / "inbox" / f"s{n}", f"hang{n}")
    pidfile = tmp_path / "pids"
    config = _hanging_mask(tmp_path, trained_bundle, pidfile, job_timeout=4.0, max_attempts=1)
    with ThreadDaemon(config) as daemon:
        wait_until(lambda: daemon.counts()["failed"] == 2, 120, "both hanging jobs to fail")
        store = daemon.store()
        jobs = store.jobs()
        store.close()
    assert all(j.attempts == 1 and "time limit of 4 s" in j.error for j in jobs), [j.error for j in jobs]
    pids = _pids(pidfile)
    assert len(pids) == 6  # each job ran the command, which started two more processes
    wait_until(lambda: all(_gone(p) for p in pids), 10, "every process of both jobs to die")
    assert list((tmp_path / "state" / "work").iterdir()) == []


@pytest.mark.slow
def test_sigterm_stops_the_daemon_within_seconds_while_a_job_hangs(
        tmp_path: Path, trained_bundle: Path, synthetic_study: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.runtime.daemon.conftest import ThreadDaemon, clone_study

    monkeypatch.chdir(ROOT)
    clone_study(synthetic_study, tmp_path / "inbox", "term")
    pidfile = tmp_path / "pids"
    config = _hanging_mask(tmp_path, trained_bundle, pidfile, job_timeout=300.0, stop_grace=1.0)
    daemon = ThreadDaemon(config)
    daemon.thread.start()
    wait_until(lambda: pidfile.exists() and len(_pids(pidfile)) == 3, 120, "the command to hang")
    t0 = time.monotonic()
    daemon.daemon.stop.set()  # what SIGTERM does
    daemon.thread.join(timeout=30)
    took = time.monotonic() - t0
    assert not daemon.thread.is_alive() and daemon.error is None
    assert took < 10, f"stopping took {took:.1f} s"
    store = daemon.store()
    job = store.jobs()[0]
    store.close()
    assert job.state is JobState.QUEUED and job.attempts == 0  # a stop is not the job's fault
    wait_until(lambda: all(_gone(p) for p in _pids(pidfile)), 10, "the hung command to die")
    assert list((tmp_path / "state" / "work").iterdir()) == []


@pytest.mark.slow
def test_once_fails_with_the_reason_on_a_quiet_study_missing_a_series(
        tmp_path: Path, trained_bundle: Path, synthetic_study: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    from glioedge.runtime.daemon.service import Daemon
    from tests.runtime.daemon.conftest import clone_study, daemon_config

    clone_study(synthetic_study, tmp_path / "inbox", "t1ce-only", series_filter="t1ce")
    config = daemon_config(tmp_path, trained_bundle, watch={"quiet_time": 0.0})
    with caplog.at_level("WARNING"):
        code = Daemon(config).run(once=True)
    assert code == 1
    incomplete = [r for r in caplog.records if r.getMessage() == "study incomplete: not processed"]
    assert incomplete and "FLAIR" in str(getattr(incomplete[0], "reason", "")).upper()


@pytest.mark.slow
def test_once_gives_up_on_an_error_that_keeps_recurring(
        tmp_path: Path, trained_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from glioedge.runtime.daemon.service import Daemon
    from tests.runtime.daemon.conftest import daemon_config

    def broken(self: Any, store: Any, inbox: Any) -> int:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Daemon, "_scan", broken)
    config = daemon_config(tmp_path, trained_bundle, watch={"retry_initial": 0.1})
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(Daemon(config).run(once=True)), daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "--once loops forever on a recurring error"
    assert codes == [2]


@pytest.mark.slow
def test_an_inbox_inside_another_daemons_inbox_is_refused_both_ways(
        tmp_path: Path, trained_bundle: Path) -> None:
    from glioedge.errors import ConfigError
    from glioedge.runtime.daemon.service import Daemon
    from tests.runtime.daemon.conftest import ThreadDaemon, daemon_config

    def other(root: Path, inbox: Path) -> Any:
        return daemon_config(root, trained_bundle, watch={"inbox": str(inbox)})

    (tmp_path / "a" / "inbox" / "sub").mkdir(parents=True)
    with ThreadDaemon(other(tmp_path / "a", tmp_path / "a" / "inbox")) as outer:
        wait_until(lambda: outer.daemon.metrics.last_tick > outer.daemon.metrics.started + 0.5, 60,
                   "the first daemon to serve")
        with pytest.raises(ConfigError, match="lies inside"):
            Daemon(other(tmp_path / "b", tmp_path / "a" / "inbox" / "sub")).run(once=True)
    with ThreadDaemon(other(tmp_path / "c", tmp_path / "a" / "inbox" / "sub")) as inner:
        wait_until(lambda: inner.daemon.metrics.last_tick > inner.daemon.metrics.started + 0.5, 60,
                   "the inner daemon to serve")
        with pytest.raises(ConfigError, match=r"inbox folder .*or an inbox inside it"):
            Daemon(other(tmp_path / "d", tmp_path / "a" / "inbox")).run(once=True)


@pytest.mark.slow
def test_after_kill9_the_restart_sweeps_the_hung_tree_and_does_not_wedge_on_the_same_job(
        tmp_path: Path, trained_bundle: Path, synthetic_study: Path) -> None:
    """The issue's scenario: a brain-mask command hangs, the operator kills the daemon with
    ``kill -9``; the inference child dies with it but the command and the study's NIfTI copies are
    left behind. The next start kills and removes them, and the job that hung is charged: with
    ``max_attempts = 1`` it fails instead of hanging the daemon again."""
    import signal

    from tests.runtime.daemon.conftest import clone_study

    clone_study(synthetic_study, tmp_path / "inbox", "kill9-hang")
    pidfile = tmp_path / "pids"
    command = f"{sys.executable} -m tests.runtime.daemon.hang_tools mask {pidfile} {{input}} {{output}}"
    (tmp_path / "glioedge.toml").write_text(
        "[watch]\nquiet_time = 0.3\npoll_interval = 0.2\nmax_attempts = 1\njob_timeout = 600\n"
        "retry_initial = 0.5\n"
        f"[segmenter]\nbrain_mask = \"command\"\nbrain_mask_command = {json.dumps(command)}\n")
    args = [sys.executable, "-m", "glioedge.runtime.daemon", "watch", str(tmp_path / "inbox"),
            "--bundle", str(trained_bundle), "--out", str(tmp_path / "outbox"), "--state",
            str(tmp_path / "state"), "--config", str(tmp_path / "glioedge.toml")]
    log = (tmp_path / "daemon1.log").open("wb")
    first = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=log)
    try:
        wait_until(lambda: pidfile.exists() and len(_pids(pidfile)) == 3, 120, "the command to hang")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
        log.close()
    work = tmp_path / "state" / "work"
    assert list(work.iterdir()), "the killed run left no temporary files (nothing to sweep?)"
    assert not all(_gone(p) for p in _pids(pidfile)), "nothing of the hung tree outlived the daemon"
    second = subprocess.run([*args, "--once"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            check=False)
    assert second.returncode == 1, second.stderr[-2000:]
    wait_until(lambda: all(_gone(p) for p in _pids(pidfile)), 10, "the leftovers to be killed")
    assert list(work.iterdir()) == []
    store = JobStore(tmp_path / "state" / "jobs.sqlite")
    job = store.jobs()[0]
    store.close()
    assert job.state is JobState.FAILED and "killed while the job ran" in job.error
    assert len(_pids(pidfile)) == 3  # the command did not run (and hang) again
