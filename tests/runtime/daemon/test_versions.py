"""Versions of a study in the inbox: quiet time per version, completeness with the site's rules and
whole geometry, content-keyed jobs (a half-written file, once completed, is processed)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pydicom
import pytest

from glioedge.runtime.daemon.inbox import Inbox, missing_series
from glioedge.runtime.daemon.jobs import JobState, JobStore
from glioedge.runtime.daemon.service import Daemon
from tests.runtime.daemon.conftest import ThreadDaemon, clone_study, daemon_config, wait_until

PIN_RULES = {"pin": {"flair": 3}}


def _anonymous_flair(study: Path) -> None:
    """Make the FLAIR unrecognisable by name and physics (a site that names series 'SEQ 1')."""
    for path in sorted((study / "flair").glob("*.dcm")):
        ds = pydicom.dcmread(path)
        ds.SeriesDescription = "SEQ 1"
        for keyword in ("ProtocolName", "SequenceName", "InversionTime", "PulseSequenceName"):
            if keyword in ds:
                delattr(ds, keyword)
        ds.save_as(path, enforce_file_format=True)


def _extra_series_file(study: Path, name: str, sop: str) -> Path:
    """One diffusion image (ignored for the segmentation, but a new instance of the study)."""
    source = next((study / "flair").glob("*.dcm"))
    ds = pydicom.dcmread(source)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.SeriesInstanceUID, ds.SeriesDescription, ds.SeriesNumber = sop + ".1", "DWI b1000", 20
    out = study / "dwi" / name
    out.parent.mkdir(exist_ok=True)
    ds.save_as(out, enforce_file_format=True)
    return out


def test_inbox_completeness_uses_the_rules_and_the_geometry(tmp_path: Path, synthetic_study: Path) -> None:
    from glioedge.dicom_io import ModalityRules

    inbox = tmp_path / "inbox"
    clone_study(synthetic_study, inbox / "s", "rules")
    _anonymous_flair(inbox / "s")
    scanner = Inbox(inbox, use_watchdog=False)
    (study,), _ = scanner.scan()
    headers = scanner.headers(study.files)
    assert "no FLAIR series" in missing_series(headers, ("flair", "t1ce"))
    assert missing_series(headers, ("flair", "t1ce"), ModalityRules.from_dict(PIN_RULES)) == ""
    # a slice missing in the middle: not complete yet (quarantine is for max_wait)
    gap = [h for h in headers if not (str(h.SeriesDescription) == "SEQ 1" and int(h.InstanceNumber) == 9)]
    reason = missing_series(gap, ("flair", "t1ce"), ModalityRules.from_dict(PIN_RULES))
    assert "slice missing" in reason
    # the same instance twice (a resend into a second folder) is counted once
    assert missing_series([*headers, *headers[:5]], ("flair", "t1ce"),
                          ModalityRules.from_dict(PIN_RULES)) == ""
    scanner.close()


def test_a_study_sent_again_waits_its_quiet_time_afresh(tmp_path: Path, trained_bundle: Path,
                                                         synthetic_study: Path) -> None:
    """``max_wait`` counts from the first file of this version, not of the study's first version:
    files still arriving long after the first version are not queued half-way."""
    inbox = tmp_path / "inbox"
    clone_study(synthetic_study, inbox / "s", "again")
    config = daemon_config(tmp_path, trained_bundle, watch={"quiet_time": 0.5, "max_wait": 1.0})
    daemon = Daemon(config)
    store = JobStore(tmp_path / "jobs.sqlite")
    scanner = Inbox(inbox, use_watchdog=False)
    try:
        time.sleep(0.6)
        daemon._scan(store, scanner)
        assert len(store.jobs()) == 1  # the first version, quiet
        time.sleep(1.1)  # longer than max_wait since the study's first file
        _extra_series_file(inbox / "s", "late1.dcm", "1.2.826.0.1.3680043.8.498.1")
        assert daemon._scan(store, scanner) == 1  # still arriving: waits, not overdue
        assert len(store.jobs()) == 1
        time.sleep(0.3)
        _extra_series_file(inbox / "s", "late2.dcm", "1.2.826.0.1.3680043.8.498.2")
        assert daemon._scan(store, scanner) == 1
        time.sleep(0.6)
        daemon._scan(store, scanner)
        jobs = store.jobs()
        assert len(jobs) == 2 and {Path(f).name for f in jobs[1].files} >= {"late1.dcm", "late2.dcm"}
    finally:
        scanner.close()
        store.close()


@pytest.mark.slow
def test_rules_complete_a_study_without_waiting_for_max_wait(tmp_path: Path, trained_bundle: Path,
                                                             synthetic_study: Path) -> None:
    clone_study(synthetic_study, tmp_path / "inbox" / "s", "rules-daemon")
    _anonymous_flair(tmp_path / "inbox" / "s")
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(PIN_RULES))
    config = daemon_config(tmp_path, trained_bundle, watch={"max_wait": 600.0},
                           model={"rules": str(rules)})
    with ThreadDaemon(config) as daemon:
        wait_until(lambda: daemon.counts()["done"] == 1, 120, "the study done well before max_wait")


@pytest.mark.slow
def test_two_parts_with_a_pause_are_one_study_not_a_quarantine(
        tmp_path: Path, trained_bundle: Path, synthetic_study: Path) -> None:
    """The T1CE arrives without slices 20-39, then nothing for longer than the quiet time, then
    the rest: a gap is 'not all here yet', so the study is processed whole, never quarantined."""
    staging = tmp_path / "staging"
    clone_study(synthetic_study, staging, "halves")
    inbox = tmp_path / "inbox" / "s"
    later = []
    for path in sorted(staging.rglob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        part = later if path.parent.name == "t1ce" and 20 <= int(ds.InstanceNumber) < 40 else None
        if part is not None:
            part.append(path)
            continue
        (inbox / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, inbox / path.parent.name / path.name)
    config = daemon_config(tmp_path, trained_bundle, watch={"quiet_time": 0.3, "max_wait": 120.0})
    with ThreadDaemon(config) as daemon:
        time.sleep(3.0)  # ten quiet times
        assert sum(daemon.counts().values()) == 0  # nothing queued, nothing quarantined
        for path in later:
            shutil.copy(path, inbox / "t1ce" / path.name)
        wait_until(lambda: daemon.counts()["done"] == 1, 120, "the whole study done")
        store = daemon.store()
        jobs = store.jobs()
        store.close()
    assert len(jobs) == 1 and len(jobs[0].files) == len(list(staging.rglob("*.dcm")))
    assert not (tmp_path / "quarantine").exists() or not any((tmp_path / "quarantine").iterdir())


@pytest.mark.slow
def test_a_half_written_file_quarantined_then_completed_is_processed(
        tmp_path: Path, trained_bundle: Path, synthetic_study: Path) -> None:
    inbox = tmp_path / "inbox" / "s"
    clone_study(synthetic_study, inbox, "half-written")
    victim = sorted((inbox / "t1ce").glob("*.dcm"))[10]
    whole = victim.read_bytes()
    victim.write_bytes(whole[: len(whole) // 2])  # the writer paused here, longer than quiet_time
    config = daemon_config(tmp_path, trained_bundle)
    with ThreadDaemon(config) as daemon:
        wait_until(lambda: daemon.counts()["quarantined"] == 1, 120, "the half-written study quarantined")
        victim.write_bytes(whole)  # the writer finishes
        wait_until(lambda: daemon.counts()["done"] == 1, 120, "the completed study processed")
        store = daemon.store()
        states = [j.state for j in store.jobs()]
        store.close()
    assert states == [JobState.QUARANTINED, JobState.DONE]


@pytest.mark.slow
def test_a_study_dropped_twice_at_once_is_processed_once_from_one_copy(
        tmp_path: Path, trained_bundle: Path, synthetic_study: Path) -> None:
    inbox = tmp_path / "inbox"
    clone_study(synthetic_study, inbox / "first", "twice")
    shutil.copytree(inbox / "first", inbox / "second")
    config = daemon_config(tmp_path, trained_bundle)
    with ThreadDaemon(config) as daemon:
        wait_until(lambda: daemon.counts()["done"] == 1, 120, "the study done")
        store = daemon.store()
        jobs = store.jobs()
        store.close()
    assert len(jobs) == 1 and len(jobs[0].files) == len(list((inbox / "first").rglob("*.dcm")))


def test_a_dicomdir_in_the_inbox_is_ignored_not_quarantined(tmp_path: Path, synthetic_study: Path) -> None:
    """A CD/viewer export carries a DICOMDIR at its root: an index, not an image, and not broken.
    The inbox classifies files with intake's own header reader, so the two never disagree."""
    from pydicom.data import get_testdata_file

    inbox = tmp_path / "inbox"
    clone_study(synthetic_study, inbox / "s", "dicomdir")
    shutil.copy(get_testdata_file("DICOMDIR"), inbox / "s" / "DICOMDIR")
    truncated = inbox / "s" / "flair" / "broken.dcm"
    truncated.write_bytes(next((inbox / "s" / "flair").glob("*.dcm")).read_bytes()[:200])
    scanner = Inbox(inbox, use_watchdog=False)
    (study,), broken = scanner.scan()
    assert [Path(b.path).name for b in broken] == ["broken.dcm"]  # the DICOMDIR is not among them
    assert not any(Path(f).name == "DICOMDIR" for f in study.files)
    scanner.close()
