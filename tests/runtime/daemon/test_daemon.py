"""The daemon end to end on folders: outputs, restart, health, logs, bad studies, full outbox, CLI."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from glioedge.runtime.daemon.jobs import JobState
from glioedge.runtime.daemon.logging import JsonFormatter, PhiFilter
from glioedge.runtime.daemon.names import safe_uid
from tests.helpers import dciodvfy_errors
from tests.runtime.daemon.conftest import (
    LOOPBACK,
    PHI_VALUES,
    ThreadDaemon,
    clone_study,
    daemon_config,
    free_port,
    published,
    wait_until,
)

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Everything glioedge logs during the test, as JSON lines through the PHI filter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(PhiFilter())
    logger = logging.getLogger("glioedge")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_study_to_seg_restart_health_and_no_phi(tmp_path: Path, trained_bundle: Path,
                                                synthetic_study: Path, json_log: io.StringIO) -> None:
    inbox = tmp_path / "inbox"
    study_uid = clone_study(synthetic_study, inbox / "scanner-export", "e2e")
    before = _files(inbox)
    port = free_port()
    config = daemon_config(tmp_path, trained_bundle, health={"port": port})
    with ThreadDaemon(config) as daemon:
        wait_until(lambda: daemon.counts()["done"] == 1, 90, "the study to be done")
        base = f"http://{LOOPBACK}:{port}"
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as r:
            health = json.loads(r.read())
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as r:
            metrics = r.read().decode()
    out = published(tmp_path / "outbox", study_uid)
    seg = pydicom.dcmread(out / "seg.dcm")
    assert seg.SOPClassUID == SEG_STORAGE and seg.StudyInstanceUID == study_uid
    report = json.loads((out / "report.json").read_text())
    assert report["seg"]["sop_instance_uid"] == seg.SOPInstanceUID
    assert _files(inbox) == before  # inputs never modified or deleted
    assert not list((tmp_path / "outbox").rglob("*.tmp"))
    assert health["status"] == "ok" and health["jobs"]["done"] == 1
    assert 'glioedge_jobs{state="done"} 1' in metrics
    assert 'glioedge_stage_seconds_count{stage="inference"} 1' in metrics
    # a restart finds the study done and does not process it again
    with ThreadDaemon(config) as daemon:
        wait_until(lambda: daemon.daemon.metrics.last_tick > daemon.daemon.metrics.started + 1.0, 20,
                   "two daemon loop ticks")
        assert daemon.counts()["done"] == 1 and sum(daemon.counts().values()) == 1
    text = json_log.getvalue()
    assert study_uid in text
    for value in PHI_VALUES:
        assert value not in text, f"patient identity {value!r} leaked into the log"
    for line in text.splitlines():
        json.loads(line)  # every line is one JSON object
    assert dciodvfy_errors(out / "seg.dcm") == []


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 4000])


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Invalid value for VR UI:UserWarning")
def test_bad_studies_are_quarantined_and_good_ones_served(
        tmp_path: Path, trained_bundle: Path, synthetic_study: Path, json_log: io.StringIO) -> None:
    inbox = tmp_path / "inbox"
    good = clone_study(synthetic_study, inbox / "good", "good")
    catalogue: dict[str, tuple[str, str]] = {}  # name -> (quarantine key, expected words)
    uid = clone_study(synthetic_study, inbox / "flair_only", "flair-only", series_filter="flair")
    catalogue["missing T1CE"] = (uid, "T1CE")
    uid = clone_study(synthetic_study, inbox / "truncated", "truncated")
    _truncate(sorted((inbox / "truncated" / "t1ce").glob("*.dcm"))[10])
    catalogue["truncated pixel data"] = (uid, "")
    uid = clone_study(synthetic_study, inbox / "gap", "gap", drop=20)
    catalogue["missing slice"] = (uid, "")
    uid = clone_study(synthetic_study, inbox / "tie", "tie")
    clone_study(inbox / "tie", inbox / "tie2", "tie2", series_filter="flair")
    for path in (inbox / "tie2").rglob("*.dcm"):  # a repeated FLAIR in the same study
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID = uid
        ds.save_as(path, enforce_file_format=True)
    catalogue["two equal FLAIRs"] = (uid, "tie")
    evil = "../../evil"
    for path in clone_study_paths(synthetic_study, inbox / "evil", "evil"):
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID = evil
        ds.save_as(path, enforce_file_format=True)
    catalogue["malicious study UID"] = (evil, "T1CE")
    (inbox / "junk.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x07\x00garbage")
    before = _files(inbox)

    config = daemon_config(tmp_path, trained_bundle, watch={"max_wait": 2.0})
    with ThreadDaemon(config) as daemon:
        def settled() -> bool:
            counts = daemon.counts()
            return counts["done"] == 1 and counts["quarantined"] == len(catalogue) + 1
        wait_until(settled, 120, "the good study done and every bad one quarantined")
        store = daemon.store()
        jobs = {j.study_uid: j for j in store.jobs()}
        store.close()
    assert jobs[good].state is JobState.DONE
    assert (published(tmp_path / "outbox", good) / "seg.dcm").is_file()
    qroot = tmp_path / "quarantine"
    for name, (key, words) in catalogue.items():
        assert jobs[key].state is JobState.QUARANTINED, name
        folder = qroot / safe_uid(key) / f"job-{jobs[key].id}"
        reason = json.loads((folder / "reason.json").read_text())
        assert words.lower() in reason["reason"].lower(), (name, reason["reason"])
        assert (folder / "reason.txt").is_file() and reason["files"], name
    assert all(p.resolve().is_relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert not (tmp_path.parent / "evil").exists()
    junk = list(qroot.glob("x*/reason.txt"))  # a file quarantined on its own: no job folder
    assert any("unreadable DICOM file" in f.read_text() for f in junk)
    assert _files(inbox) == before  # quarantine copies, never moves
    for value in PHI_VALUES:
        assert value not in json_log.getvalue()


def clone_study_paths(source: Path, target: Path, tag: str) -> list[Path]:
    """Clone only the FLAIR of ``source``; return the written files."""
    clone_study(source, target, tag, series_filter="flair")
    return sorted(target.rglob("*.dcm"))


@pytest.fixture
def tiny_outbox(tmp_path: Path) -> Iterator[Path]:
    """An outbox on a 64 KiB tmpfs (root only), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs to fill the outbox needs root")
    folder = tmp_path / "outbox"
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.slow
def test_full_outbox_keeps_the_job_queued_with_a_clear_error(
        tmp_path: Path, tiny_outbox: Path, trained_bundle: Path, synthetic_study: Path) -> None:
    study_uid = clone_study(synthetic_study, tmp_path / "inbox", "full")
    port = free_port()
    config = daemon_config(tmp_path, trained_bundle, watch={"max_attempts": 2}, health={"port": port})
    with ThreadDaemon(config) as daemon:
        def queued_with_error() -> str:
            store = daemon.store()
            try:
                jobs = store.jobs()
                return jobs[0].error if jobs and jobs[0].state is JobState.QUEUED and jobs[0].error else ""
            finally:
                store.close()
        error = wait_until(queued_with_error, 90, "the job to be re-queued with an error")
        assert "outbox is full" in error and "ENOSPC" in error and "stays queued" in error
        wait_until(lambda: daemon.daemon.metrics.render({}, {}).count('kind="outbox_full"') and
                   "outbox_full\"} 2" in daemon.daemon.metrics.render({}, {}), 60,
                   "a second failed write (more than max_attempts would allow if counted)")
        assert daemon.counts()["failed"] == 0
        try:
            urllib.request.urlopen(f"http://{LOOPBACK}:{port}/healthz", timeout=5)
        except urllib.error.HTTPError as exc:  # 503
            health = json.loads(exc.read())
        else:
            pytest.fail("/healthz answered 200 while the outbox is full")
        assert health["status"] == "degraded" and "outbox is full" in health["problems"]["outbox"]
        # space comes back: the job is written and done
        subprocess.run(["mount", "-o", "remount,size=16m", str(tiny_outbox)], check=True)
        wait_until(lambda: daemon.counts()["done"] == 1, 90, "the job to be done once space is back")
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/healthz", timeout=5) as r:
            assert json.loads(r.read())["status"] == "ok"
        metrics = daemon.daemon.metrics.render({}, {})
    # inference ran once: the retries wrote the result the inference process kept
    assert 'glioedge_stage_seconds_count{stage="inference"} 1' in metrics
    assert (published(tiny_outbox, study_uid) / "seg.dcm").is_file()
    assert not list(tiny_outbox.glob("_tmp/*"))


@pytest.mark.slow
def test_cli_once_with_config_file(tmp_path: Path, trained_bundle: Path, synthetic_study: Path) -> None:
    study_uid = clone_study(synthetic_study, tmp_path / "inbox", "cli")
    (tmp_path / "glioedge.toml").write_text(
        f'[watch]\ninbox = "{tmp_path / "inbox"}"\nquiet_time = 600\n'
        f'[model]\nbundle = "{trained_bundle}"\n[segmenter]\nqa_png = true\n')
    cmd = [sys.executable, "-m", "glioedge.runtime.daemon", "watch", "--config",
           str(tmp_path / "glioedge.toml"), "--out", str(tmp_path / "out"), "--quiet-time", "0.2",
           "--once"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = published(tmp_path / "out", study_uid)
    assert (out / "seg.dcm").is_file() and (out / "qa.png").is_file()
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert any(r.get("event") == "job" and r["message"] == "job done" for r in records)
    for value in PHI_VALUES:
        assert value not in done.stderr
    status = subprocess.run([*cmd[:4], "--out", str(tmp_path / "out"), "--status"], capture_output=True,
                            text=True, timeout=60, cwd=ROOT, check=True)
    assert json.loads(status.stdout)["counts"]["done"] == 1
    bad = subprocess.run([*cmd[:4], str(tmp_path / "inbox"), "--out", str(tmp_path / "o2"),
                          "--bundle", str(trained_bundle), "--pacs-cstore", "nonsense"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert bad.returncode == 2 and "AET@HOST:PORT" in bad.stderr


PATIENT = {"PatientName": "DOE^JOHN", "PatientID": "MRN55501", "PatientBirthDate": "19610203",
           "AccessionNumber": "ACC98765"}
#: What must never appear on the daemon's stderr: the values, their parts, their folder names.
LEAKS = ("DOE", "JOHN", "Doe", "John", "MRN55501", "19610203", "ACC98765")


def _as_patient(folder: Path) -> None:
    for path in folder.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        for keyword, value in PATIENT.items():
            setattr(ds, keyword, value)
        ds.save_as(path, enforce_file_format=True)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Invalid value for VR UI:UserWarning")
def test_daemon_stderr_is_json_without_phi_and_once_fails_on_quarantine(
        tmp_path: Path, trained_bundle: Path, synthetic_study: Path) -> None:
    """Viewer-export folder names carry the patient's name; one study is good, one has a truncated
    file (quarantined), one file is junk (a pydicom warning, quarantined). Every stderr line is a
    JSON object; no patient value or folder name appears in it, quarantine reasons included;
    ``--once`` exits 1 because studies were quarantined."""
    inbox = tmp_path / "inbox"
    good = clone_study(synthetic_study, inbox / "DOE^JOHN_MRN55501", "phi-good")
    bad = clone_study(synthetic_study, inbox / "Doe John 19610203", "phi-bad")
    _as_patient(inbox)
    _truncate(sorted((inbox / "Doe John 19610203" / "t1ce").glob("*.dcm"))[7])
    (inbox / "DOE^JOHN_MRN55501" / "junk.dcm").write_bytes(
        b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x07\x00garbage")
    cmd = [sys.executable, "-m", "glioedge.runtime.daemon", "watch", str(inbox), "--bundle",
           str(trained_bundle), "--out", str(tmp_path / "out"), "--quiet-time", "0.2", "--once"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    assert done.returncode == 1, done.stderr[-3000:]
    lines = done.stderr.splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any(r["message"] == "job done" and r["study_uid"] == good for r in records)
    assert any(r["message"] == "study quarantined" and r["study_uid"] == bad for r in records)
    assert any(r["logger"] == "py.warnings" for r in records)  # third-party text became JSON
    for leak in (*LEAKS, f"{inbox}/"):
        assert leak not in done.stderr, f"{leak!r} leaked into the daemon's stderr"
    (folder,) = (tmp_path / "out" / "_quarantine" / safe_uid(bad)).glob("job-*")
    reason = (folder / "reason.txt").read_text()
    assert " t1ce/" in reason and str(inbox) not in reason  # the file named within the study
    assert not any(leak in reason for leak in LEAKS)


@pytest.mark.slow
def test_a_second_daemon_on_the_same_inbox_or_outbox_is_refused(
        tmp_path: Path, trained_bundle: Path) -> None:
    from glioedge.errors import ConfigError
    from glioedge.runtime.daemon.service import Daemon

    config = daemon_config(tmp_path, trained_bundle)
    with ThreadDaemon(config) as daemon:
        # a loop tick (the loop starts after the locks and the inference process, >= 1 s)
        wait_until(lambda: daemon.daemon.metrics.last_tick > daemon.daemon.metrics.started + 0.5, 60,
                   "the first daemon to serve")
        other_state = daemon_config(tmp_path, trained_bundle, watch={"state": str(tmp_path / "s2")})
        with pytest.raises(ConfigError, match=r"inbox folder .*inbox"):
            Daemon(other_state).run(once=True)
        other_inbox = daemon_config(tmp_path, trained_bundle, watch={
            "state": str(tmp_path / "s3"), "inbox": str(tmp_path / "inbox2"),
            "quarantine": str(tmp_path / "q3")})
        with pytest.raises(ConfigError, match=r"outbox folder .*outbox"):
            Daemon(other_inbox).run(once=True)
        assert daemon.thread.is_alive()
