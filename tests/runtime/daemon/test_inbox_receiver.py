"""The inbox scanner (grouping, quiet time, completeness, broken files) and the Storage SCP."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from glioedge.runtime.daemon.inbox import Inbox, missing_series
from glioedge.runtime.daemon.peers import ReceiveConfig
from glioedge.runtime.daemon.receiver import Receiver, instance_path
from tests.runtime.daemon.conftest import LOOPBACK, clone_study, free_port, wait_until


def test_scan_groups_studies_and_waits_for_quiet(tmp_path: Path, synthetic_study: Path) -> None:
    inbox = tmp_path / "inbox"
    uid_a = clone_study(synthetic_study, inbox / "a", "scan-a")
    uid_b = clone_study(synthetic_study, inbox / "b", "scan-b", series_filter="flair")
    (inbox / "notes.txt").write_text("not DICOM")
    (inbox / "a" / ".partial.dcm.tmp").write_bytes(b"being written")
    scanner = Inbox(inbox, use_watchdog=False)
    studies, broken = scanner.scan()
    assert broken == []
    by_uid = {s.study_uid: s for s in studies}
    assert set(by_uid) == {uid_a, uid_b}
    assert len(by_uid[uid_a].files) == len(list((inbox / "a").rglob("*.dcm")))
    key = by_uid[uid_a].fingerprint(scanner.entries())
    # a new file (of a diffusion series) arriving after the first scan resets the quiet time
    new_file = inbox / "a" / "dwi" / "extra.dcm"
    new_file.parent.mkdir()
    ds = pydicom.dcmread(next((inbox / "a" / "flair").glob("*.dcm")))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.999"
    ds.SeriesInstanceUID, ds.SeriesDescription, ds.SeriesNumber = "1.2.3.998", "DWI b1000", 9
    ds.save_as(new_file, enforce_file_format=True)
    later = by_uid[uid_a].last_activity + 100
    studies, _ = scanner.scan(now=later)
    again = {s.study_uid: s for s in studies}[uid_a]
    assert again.last_activity == later
    assert again.fingerprint(scanner.entries()) != key  # a changed study is a new job
    # completeness: both required series in a, FLAIR only in b
    assert missing_series(scanner.headers(again.files), ("flair", "t1ce")) == ""
    assert "T1CE" in missing_series(scanner.headers(by_uid[uid_b].files), ("flair", "t1ce"))
    scanner.close()


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI:UserWarning")
def test_broken_file_is_reported(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "junk.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff" + b"garbage")
    scanner = Inbox(inbox, use_watchdog=False)
    studies, broken = scanner.scan()
    assert studies == [] and len(broken) == 1
    assert broken[0].path.endswith("junk.dcm") and broken[0].key.startswith("file:")


def test_watchdog_event_wakes_the_loop(tmp_path: Path) -> None:
    pytest.importorskip("watchdog", reason="watchdog not installed (polling only)")
    scanner = Inbox(tmp_path, use_watchdog=True)
    try:
        (tmp_path / "x.dcm").write_bytes(b"x")
        assert scanner.wait(5.0)  # woken by the event long before the timeout
    finally:
        scanner.close()


def test_receiver_writes_instances_atomically_by_uid(tmp_path: Path, synthetic_study: Path) -> None:
    pynetdicom = pytest.importorskip("pynetdicom")
    receiver = Receiver(ReceiveConfig(aet="GLIOEDGE", host=LOOPBACK, port=free_port()), tmp_path / "in")
    port = receiver.start()
    files = sorted(synthetic_study.rglob("*.dcm"))[:5]
    datasets = [pydicom.dcmread(f) for f in files]
    try:
        ae = pynetdicom.AE(ae_title="SCANNER")
        ae.add_requested_context(pynetdicom.sop_class.Verification)
        ae.add_requested_context(datasets[0].SOPClassUID, datasets[0].file_meta.TransferSyntaxUID)
        assoc = ae.associate(LOOPBACK, port, ae_title="GLIOEDGE")
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0
        statuses = [assoc.send_c_store(ds).Status for ds in datasets]
        assoc.release()
    finally:
        receiver.stop()
    assert statuses == [0] * len(datasets)
    for ds in datasets:
        path = instance_path(tmp_path / "in", ds)
        assert path.is_file()
        assert path.relative_to(tmp_path / "in").parts == (ds.StudyInstanceUID, ds.SeriesInstanceUID,
                                                           f"{ds.SOPInstanceUID}.dcm")
        assert pydicom.dcmread(path).PixelData == ds.PixelData
    assert not list((tmp_path / "in").rglob("*.tmp"))
    assert receiver.received == len(datasets)


def test_receiver_refuses_unknown_calling_aet(tmp_path: Path) -> None:
    pynetdicom = pytest.importorskip("pynetdicom")
    config = ReceiveConfig(host=LOOPBACK, port=free_port(), allowed_calling_aets=("SCANNER",))
    receiver = Receiver(config, tmp_path / "in")
    port = receiver.start()
    try:
        ae = pynetdicom.AE(ae_title="INTRUDER")
        ae.add_requested_context(pynetdicom.sop_class.Verification)
        assoc = ae.associate(LOOPBACK, port, ae_title="GLIOEDGE")
        assert not assoc.is_established
    finally:
        receiver.stop()


def test_receive_command_serves_until_sigterm(tmp_path: Path) -> None:
    pynetdicom = pytest.importorskip("pynetdicom")
    port = free_port()
    cmd = [sys.executable, "-m", "glioedge.runtime.daemon", "receive", "--aet", "EDGE", "--host",
           LOOPBACK, "--port", str(port), "--inbox", str(tmp_path / "in")]
    proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[3], stderr=subprocess.PIPE,
                            text=True)
    try:
        ae = pynetdicom.AE(ae_title="SCANNER")
        ae.add_requested_context(pynetdicom.sop_class.Verification)

        def echo() -> bool:
            assoc = ae.associate(LOOPBACK, port, ae_title="EDGE")
            if not assoc.is_established:
                return False
            status = assoc.send_c_echo()
            assoc.release()
            return status.Status == 0

        wait_until(echo, 30, "the receiver to answer C-ECHO", step=0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert '"event": "receive"' in err
