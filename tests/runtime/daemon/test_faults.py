"""``kill -9`` of the daemon during inference and during delivery, crashes of the inference
process: every job done exactly once, and a stop of the daemon is never charged to a job."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from glioedge.runtime.daemon.jobs import DeliveryState, JobState, JobStore
from glioedge.runtime.daemon.service import DB_NAME
from tests.runtime.daemon.conftest import Orthanc, clone_study, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[3]


class DaemonProcess:
    """``glioedge watch`` in a child process with injected delays (``slow_daemon``)."""

    def __init__(self, tmp: Path, args: list[str], infer_delay: float, deliver_delay: float,
                 run: int) -> None:
        self.log = tmp / f"daemon{run}.log"
        cmd = [sys.executable, "-m", "tests.runtime.daemon.slow_daemon", f"{infer_delay:g}",
               str(deliver_delay), "watch", *args]
        with self.log.open("wb") as fh:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=fh)

    def records(self) -> list[dict[str, Any]]:
        """The JSON log records so far."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line being written
        return out

    def saw(self, message: str) -> list[dict[str, Any]]:
        """Records with this message (fails the test if the daemon died)."""
        if self.proc.poll() is not None:
            pytest.fail(f"daemon exited with {self.proc.returncode}: {self.log.read_text()[-3000:]}")
        return [r for r in self.records() if r.get("message") == message]

    def kill9(self) -> None:
        """SIGKILL, no chance to clean up."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self) -> int:
        """SIGTERM and wait for a graceful exit."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def _jobs(state_dir: Path) -> tuple[list[Any], list[Any]]:
    store = JobStore(state_dir / DB_NAME)
    try:
        return store.jobs(), store.deliveries()
    finally:
        store.close()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/status").exists() and "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_kill9_during_inference_and_delivery_then_every_job_done_once(
        tmp_path: Path, orthanc_factory: Callable[..., Orthanc], trained_bundle: Path,
        synthetic_study: Path) -> None:
    """Ten kills of the daemon in the middle of inference: each kill counts the interrupted start
    (a job that hangs until someone kills the daemon must not wedge it), the interrupted job goes
    behind the others, so the kills spread over the studies and none ends failed or twice done."""
    pacs = orthanc_factory().start()
    uids = [clone_study(synthetic_study, tmp_path / "inbox" / f"s{n}", f"kill{n}") for n in range(3)]
    (tmp_path / "glioedge.toml").write_text(
        "[watch]\nquiet_time = 0.3\npoll_interval = 0.2\nmax_attempts = 10\nretry_initial = 0.3\n"
        "[delivery]\nbackoff_initial = 0.2\nbackoff_max = 1.0\ntimeout = 10\n")
    args = [str(tmp_path / "inbox"), "--bundle", str(trained_bundle), "--out", str(tmp_path / "outbox"),
            "--state", str(tmp_path / "state"), "--config", str(tmp_path / "glioedge.toml"),
            "--pacs-cstore", pacs.cstore]

    # 1: killed ten times in the middle of a job's inference; the inference child dies with it
    kills = 10
    interrupted: list[int] = []
    for n in range(kills):
        run = DaemonProcess(tmp_path, args, infer_delay=30, deliver_delay=0, run=100 + n)
        started = wait_until(lambda run=run: run.saw("inference started"), 60, "inference to start")
        run.kill9()
        child = started[-1]["pid"]
        assert isinstance(child, int)
        wait_until(lambda child=child: _gone(child), 10, "the inference child to die with the daemon")
        jobs, _ = _jobs(tmp_path / "state")
        assert [j.state for j in jobs].count(JobState.RUNNING) == 1
        assert all(j.state is not JobState.FAILED for j in jobs)
        interrupted.append(next(j.id for j in jobs if j.state is JobState.RUNNING))
        assert sum(j.attempts for j in jobs) == n + 1  # every kill counted once
    # the interrupted job went behind the others: never the same job twice in a row
    assert all(a != b for a, b in itertools.pairwise(interrupted)), interrupted

    # 2: killed after the PACS stored a SEG but before the acknowledgement was recorded
    run = DaemonProcess(tmp_path, args, infer_delay=0, deliver_delay=30, run=2)
    wait_until(lambda: run.saw("delivery started") and pacs.sop_uids("SEG"), 90,
               "the PACS to store the first SEG")
    run.kill9()
    assert run.saw  # the records of run 2 stay in daemon2.log for diagnosis
    jobs, deliveries = _jobs(tmp_path / "state")
    assert any(d.state is DeliveryState.PENDING for d in deliveries)  # stored, not yet acknowledged
    kills += 1

    # 3: a clean run finishes everything; SIGTERM stops it gracefully
    run = DaemonProcess(tmp_path, args, infer_delay=0, deliver_delay=0, run=3)
    wait_until(lambda: run.saw("daemon starting") and all(
        j.state is JobState.DONE for j in _jobs(tmp_path / "state")[0]), 120, "both jobs done")
    assert run.terminate() == 0
    starting = run.saw("daemon starting") if run.proc.poll() is None else [
        r for r in run.records() if r.get("message") == "daemon starting"]
    assert starting and "recovered_jobs" in starting[0]

    jobs, deliveries = _jobs(tmp_path / "state")
    assert sorted(j.study_uid for j in jobs) == sorted(uids)  # one job per study, never two
    assert all(j.state is JobState.DONE for j in jobs)
    # the ten kills in inference were counted, plus each job's successful start; the kill during
    # a delivery counts only if the next job's inference had started meanwhile
    assert 10 + len(uids) <= sum(j.attempts for j in jobs) <= 11 + len(uids)
    assert len(deliveries) == len(uids)
    assert all(d.state is DeliveryState.ACKED for d in deliveries)
    # the PACS holds exactly one SEG per study: the re-sent one had the same deterministic UID
    seg_uids = sorted(j.seg_sop_uid for j in jobs)
    assert pacs.sop_uids("SEG") == seg_uids
    studies = [p for p in (tmp_path / "outbox").iterdir() if not p.name.startswith("_")]
    assert sorted(p.name for p in studies) == sorted(uids)
    for p in studies:  # one version (job folder) per study, complete
        versions = list(p.iterdir())
        assert len(versions) == 1 and versions[0].name.startswith("job-"), versions
        assert sorted(f.name for f in versions[0].iterdir()) == ["report.json", "seg.dcm"]
    assert not list((tmp_path / "outbox").rglob("*.tmp"))
    assert kills == 11


def test_kill9_at_random_moments_never_loses_or_duplicates(
        tmp_path: Path, orthanc_factory: Callable[..., Orthanc], trained_bundle: Path,
        synthetic_study: Path) -> None:
    """Seeded chaos: four kills at random moments, then a clean run; the invariants hold."""
    rng = random.Random(4)
    pacs = orthanc_factory().start()
    uids = [clone_study(synthetic_study, tmp_path / "inbox" / f"s{n}", f"chaos{n}") for n in range(3)]
    (tmp_path / "glioedge.toml").write_text(
        "[watch]\nquiet_time = 0.3\npoll_interval = 0.2\nretry_initial = 0.3\nmax_attempts = 10\n"
        "[delivery]\nbackoff_initial = 0.2\nbackoff_max = 1.0\ntimeout = 10\n")
    args = [str(tmp_path / "inbox"), "--bundle", str(trained_bundle), "--out", str(tmp_path / "outbox"),
            "--state", str(tmp_path / "state"), "--config", str(tmp_path / "glioedge.toml"),
            "--pacs-cstore", pacs.cstore, "--copy-to", str(tmp_path / "share")]
    kills = 4
    for n in range(kills):
        run = DaemonProcess(tmp_path, args, infer_delay=0, deliver_delay=0, run=10 + n)
        wait_until(lambda run=run: run.saw("daemon starting"), 60, "the daemon to start")
        time.sleep(rng.uniform(1.0, 12.0))
        run.kill9()
        events = [r["message"] for r in run.records() if r.get("event") in ("job", "delivery")]
        print(f"kill {n + 1}: after {events[-1] if events else 'start-up'!r}")
    run = DaemonProcess(tmp_path, args, infer_delay=0, deliver_delay=0, run=20)
    wait_until(lambda: run.saw("daemon starting") and len(_jobs(tmp_path / "state")[0]) == len(uids)
               and all(j.state is JobState.DONE for j in _jobs(tmp_path / "state")[0]), 150,
               "every job done after the kills")
    assert run.terminate() == 0
    jobs, deliveries = _jobs(tmp_path / "state")
    assert sorted(j.study_uid for j in jobs) == sorted(uids)
    assert len(deliveries) == 2 * len(uids) and all(d.state is DeliveryState.ACKED for d in deliveries)
    assert pacs.sop_uids("SEG") == sorted(j.seg_sop_uid for j in jobs)
    for root in (tmp_path / "outbox", tmp_path / "share"):
        names = sorted(p.name for p in root.iterdir() if not p.name.startswith(("_", ".")))
        assert names == sorted(uids), root
        assert not list(root.rglob("*.tmp"))


def test_a_crashing_job_uses_its_attempts_and_the_daemon_goes_on(
        tmp_path: Path, trained_bundle: Path, synthetic_study: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A segfault in inference (here: the child kills itself with SIGSEGV) is the job's attempt:
    after ``max_attempts`` starts the job is failed with the signal named; the daemon survives."""
    from glioedge.runtime.daemon.jobproc import JobProcess
    from tests.runtime.daemon.conftest import ThreadDaemon, daemon_config
    from tests.runtime.daemon.slow_daemon import child_command

    monkeypatch.setattr(JobProcess, "command", child_command("segv"))
    clone_study(synthetic_study, tmp_path / "inbox", "segv")
    config = daemon_config(tmp_path, trained_bundle, watch={"max_attempts": 2})
    with ThreadDaemon(config) as daemon:
        wait_until(lambda: daemon.counts()["failed"] == 1, 120, "the crashing job to fail")
        store = daemon.store()
        job = store.jobs()[0]
        store.close()
        assert daemon.thread.is_alive()
    assert job.attempts == 2
    assert "killed by SIGSEGV" in job.error and "gave up after 2 attempts" in job.error
