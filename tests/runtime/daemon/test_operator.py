"""The operator's commands: ``glioedge jobs``, ``glioedge retry JOB``, ``glioedge purge``.

Against a real job store, real DICOM files in an inbox and, end to end, a real daemon whose
inference child crashes until the operator "fixes the back-end" and retries the job.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from glioedge.cli import main
from glioedge.runtime.daemon.config import parse_age
from glioedge.runtime.daemon.inbox import Inbox
from glioedge.runtime.daemon.jobs import JobState, JobStore
from glioedge.runtime.daemon.names import safe_uid
from glioedge.runtime.daemon.service import DB_NAME
from tests.runtime.daemon.conftest import PHI_VALUES, clone_study, published, wait_until

DAY = 86400.0


def _age(path: Path, seconds: float) -> None:
    """Set the mtime of ``path`` and everything below it ``seconds`` into the past."""
    t = time.time() - seconds
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (t, t))


def _set_updated(state_dir: Path, job_id: int, seconds_ago: float) -> None:
    with sqlite3.connect(state_dir / DB_NAME) as db:
        db.execute("UPDATE jobs SET updated_at = ?, created_at = ? WHERE id = ?",
                   (time.time() - seconds_ago, time.time() - seconds_ago, job_id))


def _queue(store: JobStore, inbox: Path, study_uid: str, state: JobState) -> int:
    """Record the study's present version as a job in ``state`` (what the daemon would do)."""
    scanner = Inbox(inbox, use_watchdog=False)
    studies, _ = scanner.scan()
    study = next(s for s in studies if s.study_uid == study_uid)
    key = study.fingerprint(scanner.entries())
    scanner.close()
    job_id = store.add_job(key, study_uid, study.files)
    assert job_id is not None
    if state is not JobState.QUEUED:
        store.finish(job_id, state, "" if state is JobState.DONE else "reason")
    return job_id


def test_parse_age() -> None:
    assert parse_age("30d") == 30 * DAY and parse_age("12h") == 12 * 3600
    assert parse_age("90m") == 5400 and parse_age("45s") == 45 and parse_age("2") == 2 * DAY
    with pytest.raises(Exception, match="--older-than 'soon'"):
        parse_age("soon")


def test_jobs_table_shows_uids_states_errors_and_no_patient_values(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    store = JobStore(state / DB_NAME)
    a = store.add_job("k1", "1.2.3.4", ["/in/SYNTHETIC^PHANTOM/a.dcm"])
    b = store.add_job("k2", "1.2.3.5", [])
    store.finish(b, JobState.QUARANTINED, "series missing: t1ce")
    store.close()
    assert main(["jobs", "--state", str(state)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["ID", "STUDY", "UID"]
    assert lines[1].split()[:4] == [str(b), "1.2.3.5", "quarantined", "0"]
    assert "series missing: t1ce" in lines[1]
    assert lines[2].split()[:3] == [str(a), "1.2.3.4", "queued"]
    assert not any(v in out for v in PHI_VALUES)  # file paths are not part of the table
    assert main(["jobs", "--state", str(state), "--json", "--state-is", "queued"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["state"]) for r in rows] == [(a, "queued")]


def test_retry_requeues_only_failed_or_quarantined_jobs(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    store = JobStore(state / DB_NAME)
    done = store.add_job("k0", "1.2.3", ["a"])
    store.finish(done, JobState.DONE)
    failed = store.add_job("k1", "1.2.4", ["b"])
    store.claim(1)
    store.finish(failed, JobState.FAILED, "gave up after 1 attempts")
    delivery = store.add_job("k2", "1.2.5", ["c"])
    store.claim(1)
    store.outputs_written(delivery, str(tmp_path / "out"), "1.2.5.9", ["pacs"])
    store.delivery_result(delivery, "pacs", ok=False, error="refused", retry_in=None)
    assert store.job(delivery).state is JobState.FAILED
    store.close()
    assert main(["retry", str(failed), "--state", str(state)]) == 0
    assert main(["retry", str(delivery), "--state", str(state)]) == 0
    assert main(["retry", str(done), "--state", str(state)]) == 2
    assert main(["retry", "999", "--state", str(state)]) == 2
    err = caplog.text
    assert f"job {done} is done" in err and "no job 999" in err
    store = JobStore(state / DB_NAME)
    job = store.job(failed)
    assert (job.state, job.attempts, job.error) == (JobState.QUEUED, 0, "")
    assert store.job(delivery).state is JobState.DELIVERING
    assert [d.state.value for d in store.deliveries(delivery)] == ["pending"]
    assert store.claim(3).id == failed  # the daemon takes it again
    store.close()


def test_purge_removes_only_what_is_older_than_the_limit(tmp_path: Path, synthetic_study: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    inbox, outbox, quarantine, state = (tmp_path / n for n in ("inbox", "outbox", "quarantine", "state"))
    uids = {tag: clone_study(synthetic_study, inbox / tag, tag)
            for tag in ("old-done", "new-done", "old-inflight", "old-unprocessed", "old-quarantined")}
    store = JobStore(state / DB_NAME)
    ids = {
        "old-done": _queue(store, inbox, uids["old-done"], JobState.DONE),
        "new-done": _queue(store, inbox, uids["new-done"], JobState.DONE),
        "old-inflight": _queue(store, inbox, uids["old-inflight"], JobState.QUEUED),
        "old-quarantined": _queue(store, inbox, uids["old-quarantined"], JobState.QUARANTINED),
    }
    store.close()
    for tag, uid in uids.items():
        folder = (quarantine if tag == "old-quarantined" else outbox) / safe_uid(uid)
        if tag in ids:
            folder.mkdir(parents=True)
            (folder / "report.json").write_text("{}")
        if tag != "new-done":
            _age(inbox / tag, 40 * DAY)
            if tag in ids:
                _age(folder, 40 * DAY)
                _set_updated(state, ids[tag], 40 * DAY)
    (outbox / "_tmp").mkdir()
    _age(outbox / "_tmp", 40 * DAY)
    config = tmp_path / "glioedge.toml"
    config.write_text(f'[watch]\ninbox = "{inbox}"\noutbox = "{outbox}"\nquarantine = "{quarantine}"\n'
                      f'state = "{state}"\n[retention]\nolder_than = "30d"\n')
    def files() -> set[Path]:
        return {p for p in tmp_path.rglob("*") if p.is_file() and state not in p.parents}

    before = files()

    assert main(["purge", "--config", str(config), "--dry-run"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert files() == before  # nothing removed
    assert main(["purge", "--config", str(config)]) == 0  # the config's 30 days
    report = json.loads(capsys.readouterr().out)
    assert {k: v for k, v in dry.items() if k != "dry_run"} == {
        k: v for k, v in report.items() if k != "dry_run"}

    gone = {"old-done", "old-quarantined"}
    for tag, uid in uids.items():
        assert (inbox / tag).exists() == (tag not in gone), tag
        folder = (quarantine if tag == "old-quarantined" else outbox) / safe_uid(uid)
        assert folder.exists() == (tag in ids and tag not in gone), tag
    assert (outbox / "_tmp").is_dir()  # the daemon's own folders are not studies
    store = JobStore(state / DB_NAME)
    left = {j.id for j in store.jobs()}
    store.close()
    assert left == {ids["new-done"], ids["old-inflight"]}
    n_files = sum(1 for p in (inbox / "new-done").rglob("*.dcm"))
    assert report["inbox_files"] == 2 * n_files and report["jobs"] == 2
    assert report["outbox_folders"] == 1 and report["quarantine_folders"] == 1
    assert report["kept_unprocessed_studies"] == 1

    # a shorter limit now reaches the newer study, never the job in flight
    assert main(["purge", "--config", str(config), "--older-than", "0s"]) == 0
    capsys.readouterr()
    assert not (inbox / "new-done").exists() and (inbox / "old-inflight").is_dir()
    assert (inbox / "old-unprocessed").is_dir() and (outbox / safe_uid(uids["old-inflight"])).is_dir()
    assert main(["purge", "--config", str(config), "--older-than", "soon"]) == 2
    store = JobStore(state / DB_NAME)
    assert {j.id for j in store.jobs()} == {ids["old-inflight"]}
    store.close()
    # without the inbox it cannot know which studies are still there: refused, nothing removed
    before = files()
    assert main(["purge", "--state", str(state), "--out", str(outbox), "--older-than", "0s"]) == 2
    assert files() == before


@pytest.mark.slow
def test_a_retried_job_runs_again_end_to_end(tmp_path: Path, trained_bundle: Path,
                                             synthetic_study: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A job fails (its inference child crashes: a broken back-end); the operator fixes the
    back-end, ``glioedge retry``s the job, and the daemon runs it to a SEG."""
    from glioedge.runtime.daemon.jobproc import JobProcess
    from tests.runtime.daemon.conftest import ThreadDaemon, daemon_config
    from tests.runtime.daemon.slow_daemon import child_command

    uid = clone_study(synthetic_study, tmp_path / "inbox", "retry")
    config = daemon_config(tmp_path, trained_bundle, watch={"max_attempts": 1})
    healthy = JobProcess.command
    monkeypatch.setattr(JobProcess, "command", child_command("segv"))
    with ThreadDaemon(config) as daemon:
        wait_until(lambda: daemon.counts()["failed"] == 1, 120, "the crashing job to fail")
    store = JobStore(config.watch.state_dir / DB_NAME)
    job = store.jobs()[0]
    store.close()
    assert "killed by SIGSEGV" in job.error and not (tmp_path / "outbox" / safe_uid(uid)).exists()

    monkeypatch.setattr(JobProcess, "command", healthy)  # the operator fixed the back-end
    assert main(["retry", str(job.id), "--state", str(config.watch.state_dir)]) == 0
    with ThreadDaemon(config) as daemon:
        wait_until(lambda: daemon.counts()["done"] == 1, 120, "the retried job to be done")
        store = daemon.store()
        again = store.job(job.id)
        n_jobs = len(store.jobs())
        store.close()
    assert (again.state, again.attempts, n_jobs) == (JobState.DONE, 1, 1)
    assert (published(tmp_path / "outbox", uid) / "seg.dcm").is_file()
