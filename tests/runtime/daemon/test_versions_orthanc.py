"""End to end against a real Orthanc: a study arrives in two parts with a PACS outage in between,
and the older (partial) version is retried afterwards. Orthanc ends with exactly the SEG of the
complete version; ``glioedge jobs`` says which version is current."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest

from glioedge.dicom_io.completeness import INCOMPLETE_MARK
from glioedge.runtime.daemon.commands import main
from glioedge.runtime.daemon.jobs import JobState
from tests.runtime.daemon.conftest import (
    PHI_VALUES,
    Orthanc,
    ThreadDaemon,
    clone_study,
    daemon_config,
    wait_until,
)

#: Inbox folders named after the patient, as viewer exports name them.
FOLDER = "SYNTHETIC PHANTOM_GLIOEDGE-SYN-0001_19700101"


def _drop_in(files: list[Path], source: Path, inbox: Path) -> None:
    """Copy files into the inbox the way a careful sender does (temporary name, then rename)."""
    for path in files:
        target = inbox / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target.with_name(target.name + ".part"))
        target.with_name(target.name + ".part").rename(target)


def test_two_parts_an_outage_and_a_late_retry_leave_only_the_complete_seg(
        tmp_path: Path, orthanc_factory: Callable[..., Orthanc], trained_bundle: Path,
        synthetic_study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "study"
    study_uid = clone_study(synthetic_study, source, "two-parts")
    t1ce = sorted((source / "t1ce").glob("*.dcm"), key=lambda p: float(
        pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]))
    part1 = sorted((source / "flair").glob("*.dcm")) + t1ce[: len(t1ce) // 2]
    part2 = t1ce[len(t1ce) // 2:]
    pacs = orthanc_factory()  # ports reserved, not started: the PACS is down
    config = daemon_config(tmp_path, trained_bundle, watch={"max_wait": 3.0},
                           delivery={"cstore": [pacs.cstore], "max_attempts": 1})
    state = str(config.watch.state_dir)
    with ThreadDaemon(config) as daemon:
        _drop_in(part1, source, tmp_path / "inbox" / f"{FOLDER}_1")
        # held until max_wait (the T1CE ends short of the FLAIR), processed, its send fails
        wait_until(lambda: daemon.counts()["failed"] == 1, 120, "the partial version's send to fail")
        pacs.start()  # the outage ends
        _drop_in(part2, source, tmp_path / "inbox" / f"{FOLDER}_2")
        wait_until(lambda: daemon.counts()["done"] == 1, 120, "the complete version to be delivered")
        store = daemon.store()
        v1, v2 = store.jobs()
        store.close()
        assert (v1.state, v2.state) == (JobState.FAILED, JobState.DONE)
        assert len(v2.files) == len(part1) + len(part2) and len(v1.files) == len(part1)
        # the operator retries the older version afterwards: it never replaces the newer one
        assert main(["retry", str(v1.id), "--state", state]) == 0
        assert "superseded" in capsys.readouterr().out
        time.sleep(2.0)
        store = daemon.store()
        assert store.job(v1.id).state is JobState.SUPERSEDED
        assert store.job(v2.id).state is JobState.DONE
        store.close()
    partial = pydicom.dcmread(Path(v1.output_dir) / "seg.dcm", stop_before_pixels=True)
    complete = pydicom.dcmread(Path(v2.output_dir) / "seg.dcm", stop_before_pixels=True)
    assert Path(v1.output_dir) != Path(v2.output_dir)  # each version its own folder
    assert partial.SOPInstanceUID != complete.SOPInstanceUID  # each under its own identity
    assert str(partial.SeriesDescription).endswith(INCOMPLETE_MARK)
    assert not str(complete.SeriesDescription).endswith(INCOMPLETE_MARK)
    report = json.loads((Path(v1.output_dir) / "report.json").read_text())
    assert report["intake"]["completeness"]["complete"] is False
    assert pacs.sop_uids("SEG") == [complete.SOPInstanceUID]  # exactly the complete version
    assert pacs.post("/tools/lookup", study_uid)
    assert main(["jobs", "--state", state, "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert (rows[v2.id]["version"], rows[v1.id]["version"]) == ("current", "superseded")
    assert main(["jobs", "--state", state]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith(f"{v2.id} "))
    assert "current" in line.split()
    # nothing the daemon wrote carries the patient's values from the folder names (the SEG
    # itself carries the patient module, as a DICOM object for the PACS must)
    for root in (config.watch.outbox, str(config.watch.quarantine_dir)):
        for path in Path(root).rglob("*"):
            text = str(path.relative_to(root))
            if path.is_file() and path.suffix in (".json", ".txt"):
                text += path.read_text()
            for value in (*PHI_VALUES, "SYNTHETIC PHANTOM", "19700101"):
                assert value not in text, (path, value)
