"""What the daemon never processes is visible and purged; purge never races the receiver.

Real DICOM files (a Basic Text SR beside the synthetic MR study), a real inbox scanner, a real
job store and ``glioedge purge``; the receiver's write path against a folder removed under it.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from glioedge.runtime.daemon.config import DaemonConfig
from glioedge.runtime.daemon.inbox import Inbox
from glioedge.runtime.daemon.jobs import JobState, JobStore
from glioedge.runtime.daemon.operator import purge
from glioedge.runtime.daemon.receiver import write_instance
from glioedge.runtime.daemon.service import DB_NAME
from tests.runtime.daemon.conftest import clone_study

DAY = 86400.0


def _write_sr(folder: Path, n: int) -> list[Path]:
    """``n`` Basic Text SR objects, each in its own study folder (as the receiver lays them out)."""
    out = []
    for i in range(n):
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.88.11", generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.Modality, ds.PatientID, ds.ValueType = "SR", f"P{i}", "CONTAINER"
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / ds.StudyInstanceUID / ds.SeriesInstanceUID / f"{ds.SOPInstanceUID}.dcm"
        path.parent.mkdir(parents=True)
        ds.save_as(path, enforce_file_format=True)
        out.append(path)
    return out


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (t, t))


def _config(tmp_path: Path) -> DaemonConfig:
    inbox, outbox, state = tmp_path / "inbox", tmp_path / "outbox", tmp_path / "state"
    for folder in (inbox, outbox, state):
        folder.mkdir(exist_ok=True)
    JobStore(state / DB_NAME).close()
    return DaemonConfig.from_dict({"watch": {"inbox": str(inbox), "outbox": str(outbox),
                                             "state": str(state)}})


def test_watch_logs_ignored_files_once_with_a_reason(tmp_path: Path, synthetic_study: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    inbox = tmp_path / "inbox"
    clone_study(synthetic_study, inbox / "mr", "mr")
    _write_sr(inbox, 3)
    (inbox / "notes.txt").write_text("not DICOM")
    scanner = Inbox(inbox, use_watchdog=False)
    with caplog.at_level(logging.WARNING, logger="glioedge.runtime.daemon.inbox"):
        studies, _ = scanner.scan()
        scanner.scan()
    scanner.close()
    assert len(studies) == 1  # the MR study only
    records = [r for r in caplog.records if getattr(r, "event", "") == "inbox_ignored"]
    by_reason = {r.reason: r.files for r in records}
    assert by_reason == {"not an MR image (Basic Text SR Storage)": 3,
                         "not a DICOM file (no DICM preamble at byte 128)": 1}  # once, not per scan
    assert all(str(tmp_path) not in r.getMessage() + str(r.reason) for r in records)  # no paths


def test_purge_counts_and_removes_what_is_never_processed(tmp_path: Path, synthetic_study: Path) -> None:
    config = _config(tmp_path)
    inbox = Path(config.watch.inbox)
    old = _write_sr(inbox, 4)
    for path in old:
        _age(path.parents[1], 40 * DAY)
    new = _write_sr(inbox, 1)
    uid = clone_study(synthetic_study, inbox / "mr", "mr")  # an MR study not yet processed
    _age(inbox / "mr", 40 * DAY)
    dry = purge(config, 30 * DAY, dry_run=True)
    assert dry.ignored_files == 4 and all(p.exists() for p in old)
    report = purge(config, 30 * DAY)
    assert report.ignored_files == 4 and report.kept_unprocessed_studies == 1
    assert not any(p.parents[1].exists() for p in old)  # the SR study folders went with them
    assert all(p.exists() for p in new) and (inbox / "mr").is_dir()
    assert uid


def test_purge_keeps_a_folder_changed_within_the_limit(tmp_path: Path, synthetic_study: Path) -> None:
    """A processed study's files go; a folder of it that changed just now (the receiver created
    or wrote in it) stays, though purge emptied it."""
    config = _config(tmp_path)
    inbox = Path(config.watch.inbox)
    uid = clone_study(synthetic_study, inbox / "study", "s")
    store = JobStore(Path(config.watch.state) / DB_NAME)
    scanner = Inbox(inbox, use_watchdog=False)
    studies, _ = scanner.scan()
    job = store.add_job(studies[0].fingerprint(scanner.entries()), uid, studies[0].files)
    scanner.close()
    assert job is not None
    store.finish(job, JobState.DONE, "")
    store.close()
    _age(inbox / "study", 40 * DAY)
    series = sorted(p for p in (inbox / "study").iterdir() if p.is_dir())
    os.utime(series[0])  # just now
    report = purge(config, 30 * DAY)
    assert report.inbox_files == len(studies[0].files)
    assert not list((inbox / "study").rglob("*.dcm"))
    assert series[0].is_dir() and not series[1].exists()


def test_receiver_write_survives_its_folder_vanishing(tmp_path: Path, synthetic_study: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The interleaving purge can cause: the series folder exists when the receiver creates it
    and is removed (empty) before the temporary file is made in it."""
    ds = pydicom.dcmread(sorted(synthetic_study.rglob("*.dcm"))[0])
    real = tempfile.mkstemp
    calls = []

    def purge_in_between(*args: object, **kwargs: object) -> tuple[int, str]:
        if not calls:
            Path(str(kwargs["dir"])).rmdir()  # purge's rmdir of the emptied folder
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setattr(tempfile, "mkstemp", purge_in_between)
    path = write_instance(tmp_path / "in", ds, ds.file_meta)
    assert pydicom.dcmread(path).SOPInstanceUID == ds.SOPInstanceUID and len(calls) == 2


def test_a_study_being_deleted_is_no_new_version_until_quiet(tmp_path: Path, synthetic_study: Path) -> None:
    """Issue 17: files of a study going (purge, an operator) are activity of the study: what is
    left is not a complete-looking new version at the next poll (that queued spurious jobs which
    then failed with "input file disappeared")."""
    inbox = tmp_path / "inbox"
    clone_study(synthetic_study, inbox / "s", "being-deleted")
    scanner = Inbox(inbox, use_watchdog=False)
    t0 = time.time()
    (study,) = scanner.scan(t0 + 100)[0]
    assert t0 + 100 - study.last_activity >= 30  # quiet long ago: it was queued then
    files = sorted(inbox.rglob("*.dcm"))
    for path in files[: len(files) // 2]:
        path.unlink()
    (left,) = scanner.scan(t0 + 200)[0]
    assert len(left.files) == len(files) - len(files) // 2
    assert left.last_activity == t0 + 200  # the removal: quiet time starts again
    for path in files[len(files) // 2:]:
        path.unlink()
    assert scanner.scan(t0 + 201)[0] == []  # the study went as a whole: nothing to queue


def _slice_position(path: Path) -> float:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return float(ds.ImagePositionPatient[2])


def test_daemon_queues_nothing_while_a_done_study_is_deleted(tmp_path: Path, trained_bundle: Path,
                                                              synthetic_study: Path) -> None:
    from tests.runtime.daemon.conftest import ThreadDaemon, daemon_config, wait_until

    inbox = tmp_path / "inbox"
    clone_study(synthetic_study, inbox / "s", "deleted-while-running")
    config = daemon_config(tmp_path, trained_bundle, watch={"quiet_time": 2.0})
    with ThreadDaemon(config) as daemon:
        wait_until(lambda: daemon.counts().get("done", 0) == 1, 120, "the study processed")
        series = [sorted(folder.glob("*.dcm"), key=_slice_position) for folder in sorted(inbox.glob("s/*"))]
        first = [p for files in series for p in files[len(files) // 2:]]  # the upper half of each
        for path in first:  # series: what is left still looks like a whole, shorter study
            path.unlink()
        time.sleep(1.0)  # several polls (0.2 s)
        for path in [p for files in series for p in files[: len(files) // 2]]:
            path.unlink()
        time.sleep(3.0)  # past the quiet time: a spurious version would have been queued by now
        store = daemon.store()
        try:
            jobs = store.jobs()
        finally:
            store.close()
    assert [j.state for j in jobs] == [JobState.DONE], [(j.state, j.error) for j in jobs]
