"""The inbox at scale (issue 17, item 12): a restart reads no file it already knows, an idle poll
lists no folder, and what changed is still found (new files, files replaced or rewritten in place).
Timings are in ``bench/daemon_scale.py``; these tests count work, never time it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

import glioedge.runtime.daemon.inbox as inbox_mod
from glioedge.runtime.daemon.inbox import Inbox

MR = "1.2.840.10008.5.1.4.1.1.4"


def _write(path: Path, study: str, sop: str, description: str = "T1CE") -> None:
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = MR
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = study, f"{study}.1", "MR"
    ds.SeriesDescription = description
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _inbox(root: Path, studies: int = 3, files: int = 4) -> None:
    for s in range(studies):
        for f in range(files):
            uid = f"1.2.826.0.1.{s + 1}"
            _write(root / f"study{s}" / "t1ce" / f"{f}.dcm", uid, f"{uid}.{f + 1}")


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths whose header the scanner read (and hashed)."""
    seen: list[str] = []
    real = inbox_mod._read_entry

    def counting(path: Path, *args: object) -> inbox_mod.FileEntry:
        seen.append(str(path))
        return real(path, *args)

    monkeypatch.setattr(inbox_mod, "_read_entry", counting)
    return seen


def _keys(inbox: Inbox) -> dict[str, str]:
    studies, _ = inbox.scan()
    return {s.study_uid: s.fingerprint(inbox.entries()) for s in studies}


def test_a_restart_reads_no_file_it_already_knows(tmp_path: Path, reads: list[str]) -> None:
    _inbox(tmp_path / "in")
    cache = tmp_path / "state" / "inbox_cache.sqlite"
    cache.parent.mkdir()
    first = Inbox(tmp_path / "in", use_watchdog=False, cache=cache)
    keys = _keys(first)
    first.close()
    assert len(reads) == 12
    reads.clear()
    again = Inbox(tmp_path / "in", use_watchdog=False, cache=cache)
    assert _keys(again) == keys and reads == []  # nothing read, the same job keys
    again.close()
    # a file rewritten in place (new mtime) and one replaced by a rename keeping size and mtime
    # (rsync -t, cp -p then mv): both are read again, and their studies get new keys
    rewritten = tmp_path / "in" / "study0" / "t1ce" / "0.dcm"
    _write(rewritten, "1.2.826.0.1.1", "1.2.826.0.1.1.1", description="T1CE corrected")
    replaced = tmp_path / "in" / "study1" / "t1ce" / "0.dcm"
    st = replaced.stat()
    tmp = replaced.with_name("x.tmp")
    _write(tmp, "1.2.826.0.1.2", "1.2.826.0.1.2.1", description="T1CX")  # same length
    assert tmp.stat().st_size == st.st_size
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    tmp.replace(replaced)
    reads.clear()
    third = Inbox(tmp_path / "in", use_watchdog=False, cache=cache)
    new_keys = _keys(third)
    third.close()
    assert sorted(reads) == sorted([str(rewritten), str(replaced)])
    assert new_keys["1.2.826.0.1.1"] != keys["1.2.826.0.1.1"]
    assert new_keys["1.2.826.0.1.2"] != keys["1.2.826.0.1.2"]
    assert new_keys["1.2.826.0.1.3"] == keys["1.2.826.0.1.3"]


def test_an_idle_poll_lists_no_folder_and_changes_are_still_found(tmp_path: Path, reads: list[str]) -> None:
    _inbox(tmp_path / "in")
    inbox = Inbox(tmp_path / "in", use_watchdog=False, settle=1.0, rescan=1000.0)
    t0 = time.time() + 5  # every folder is older than the settle time
    studies, _ = inbox.scan(t0)
    assert len(studies) == 3 and len(reads) == 12
    tree = inbox._tree
    studies, _ = inbox.scan(t0 + 2)
    assert len(studies) == 3
    assert tree.last["listed"] == 0 and tree.last["files"] == 0  # one stat per folder, no more
    # a new file: its folder's mtime changed, only that folder is listed
    _write(tmp_path / "in" / "study1" / "t1ce" / "9.dcm", "1.2.826.0.1.2", "1.2.826.0.1.2.9")
    studies, _ = inbox.scan(t0 + 4)
    assert tree.last["listed"] == 1
    assert len(next(s for s in studies if s.study_uid == "1.2.826.0.1.2").files) == 5
    # a file rewritten in place in a settled folder (its folder's mtime does not change) ...
    old = tmp_path / "in" / "study2" / "t1ce" / "0.dcm"
    _write(old, "1.2.826.0.1.3", "1.2.826.0.1.3.1", description="T1CE corrected")
    reads.clear()
    inbox.scan(t0 + 8)
    assert reads == []  # ... is not seen by an idle poll ...
    tree.mark_dirty(str(old))  # ... but by a filesystem event (watchdog) at once ...
    inbox.scan(t0 + 9)
    assert reads == [str(old)]
    _write(old, "1.2.826.0.1.3", "1.2.826.0.1.3.1", description="T1CE again")
    reads.clear()
    inbox.scan(t0 + 2000)  # ... and by the full rescan without events (network shares)
    assert reads == [str(old)]
    # a folder removed: its files are gone from the study
    for f in (tmp_path / "in" / "study0" / "t1ce").iterdir():
        f.unlink()
    (tmp_path / "in" / "study0" / "t1ce").rmdir()
    studies, _ = inbox.scan(t0 + 2010)
    assert sorted(s.study_uid for s in studies) == ["1.2.826.0.1.2", "1.2.826.0.1.3"]
    inbox.close()


def test_the_daemons_own_folders_inside_the_inbox_are_never_entered(tmp_path: Path,
                                                                    reads: list[str]) -> None:
    _inbox(tmp_path / "in", studies=1)
    _write(tmp_path / "in" / "out" / "x" / "seg.dcm", "1.2.826.0.9", "1.2.826.0.9.1")
    (tmp_path / "in" / "link.dcm").symlink_to(tmp_path / "in" / "out" / "x" / "seg.dcm")
    inbox = Inbox(tmp_path / "in", exclude=[tmp_path / "in" / "out"], use_watchdog=False)
    studies, _ = inbox.scan()
    assert [s.study_uid for s in studies] == ["1.2.826.0.1.1"] and len(reads) == 4
    inbox.close()
