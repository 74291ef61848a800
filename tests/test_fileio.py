"""The one atomic-write helper (``glioedge.fileio``): files and whole folders, and what a failure leaves."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import pytest

from glioedge.fileio import atomic_write, atomic_write_text, publish_dir
from glioedge.runtime.daemon.delivery import DeliveryError, FolderDestination


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def _folder(path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    return path


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = atomic_write_text(tmp_path / "report.json", "old")

    def half(f: BinaryIO) -> None:
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(target, half)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_publish_dir_replaces_a_folder_whole(tmp_path: Path) -> None:
    final = _folder(tmp_path / "out" / "job-1", {"seg.dcm": "old", "stale.txt": "gone"})
    staging = _folder(tmp_path / "out" / "_tmp" / "job-1", {"seg.dcm": "new", "sub/report.json": "{}"})
    assert publish_dir(staging, final) == final
    assert _tree(final) == {"seg.dcm": "new", "sub/report.json": "{}"}  # no file of the old folder
    assert not staging.exists()
    assert list((tmp_path / "out" / "_tmp").iterdir()) == []  # the parked old folder is removed


def test_publish_dir_puts_the_old_folder_back_when_the_swap_fails(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    final = _folder(tmp_path / "job-1", {"seg.dcm": "old"})
    staging = _folder(tmp_path / ".job-1.tmp", {"seg.dcm": "new"})
    real_rename = Path.rename

    def rename(self: Path, target: Path) -> Path:
        if self == staging:
            raise OSError(30, "Read-only file system")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="Read-only"):
        publish_dir(staging, final)
    assert _tree(final) == {"seg.dcm": "old"}
    assert _tree(staging) == {"seg.dcm": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".job-1.tmp", "job-1"]


def test_publish_dir_keeps_a_parked_folder_until_the_new_one_is_in_place(tmp_path: Path) -> None:
    # a crash between the two renames left the previous folder parked and no final
    parked = _folder(tmp_path / ".ckpt.old", {"checkpoint.json": "previous"})
    staging = _folder(tmp_path / ".ckpt.tmp", {"checkpoint.json": "new"})
    publish_dir(staging, tmp_path / "ckpt", old=parked)
    assert _tree(tmp_path / "ckpt") == {"checkpoint.json": "new"}
    assert not parked.exists() and not staging.exists()


def test_folder_destination_publishes_and_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job = _folder(tmp_path / "outbox" / "1.2.3" / "job-7", {"seg.dcm": "v1"})
    dest = FolderDestination(tmp_path / "share")
    dest.send(job)
    (job / "seg.dcm").write_text("v2")
    dest.send(job)
    assert _tree(tmp_path / "share") == {"1.2.3/job-7/seg.dcm": "v2"}

    def full(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("glioedge.runtime.daemon.delivery.shutil.copytree", full)
    with pytest.raises(DeliveryError, match="No space"):
        dest.send(job)
    assert _tree(tmp_path / "share") == {"1.2.3/job-7/seg.dcm": "v2"}  # no temporary folder left
