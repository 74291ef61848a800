"""One study, many versions: each job publishes to and delivers from its own folder, an older
version never replaces a newer one, inputs go only when nothing needs them, purge keeps failed
studies, and nothing the daemon writes carries an inbox folder name."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from glioedge.runtime.daemon.commands import main
from glioedge.runtime.daemon.delivery import FolderDestination
from glioedge.runtime.daemon.health import Metrics
from glioedge.runtime.daemon.jobs import DeliveryState, JobState, JobStore
from glioedge.runtime.daemon.service import DB_NAME
from glioedge.runtime.daemon.worker import Worker
from tests.runtime.daemon.conftest import daemon_config

STUDY = "1.2.826.0.1.3680043.8.498.77"


class _WritingChild:
    """Stands in for the inference process only: writes a marker "SEG" naming the job (the
    publication and delivery around it are the real ones)."""

    pid = None
    stop = threading.Event()  # never set: the daemon is not told to stop

    def run(self, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        staging = Path(request["staging"])
        staging.mkdir(parents=True)
        (staging / "seg.dcm").write_text(f"SEG of job {request['job_id']}")
        return {"status": "written", "seg_sop_uid": f"2.25.{request['job_id']}"}


def _setup(tmp_path: Path, **watch: Any) -> tuple[Any, JobStore, Worker, Path]:
    config = daemon_config(tmp_path, tmp_path / "bundle", watch=watch)
    store = JobStore(config.watch.state_dir / DB_NAME)
    dest = FolderDestination(tmp_path / "pacs")
    worker = Worker(config, store, _WritingChild(), Metrics(), {dest.name: dest})  # type: ignore[arg-type]
    return config, store, worker, tmp_path / "pacs"


def _inputs(tmp_path: Path, names: list[str]) -> list[str]:
    files = []
    for name in names:
        path = tmp_path / "inbox" / "DOE_JOHN_12345_19700101" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"dicom " + name.encode())
        files.append(str(path))
    return files


def test_an_older_version_finishing_last_never_replaces_the_newer_one(tmp_path: Path) -> None:
    _, store, worker, pacs = _setup(tmp_path)
    v1 = store.add_job(f"{STUDY}#v1", STUDY, _inputs(tmp_path, ["a"]))
    v2 = store.add_job(f"{STUDY}#v2", STUDY, _inputs(tmp_path, ["a", "b"]))
    assert v1 is not None and v2 is not None
    store.requeue(v1, "transient", 60)  # v1 failed transiently: v2 runs first
    assert worker.process(store.claim(3)).value == "delivering"  # v2 published, send pending
    store.requeue(v1, "transient", 0)
    assert worker.process(store.claim(3)) is JobState.SUPERSEDED  # v1's retry comes after
    assert worker.deliver_due() == 1
    v1_job, v2_job = store.job(v1), store.job(v2)
    assert v1_job.output_dir != v2_job.output_dir  # each version its own folder
    assert (Path(v2_job.output_dir) / "seg.dcm").read_text() == f"SEG of job {v2}"
    delivered = sorted(p.read_text() for p in pacs.rglob("seg.dcm"))
    assert delivered == [f"SEG of job {v2}"]  # the complete version, and only it, went out
    assert (v1_job.state, v2_job.state) == (JobState.SUPERSEDED, JobState.DONE)
    assert f"superseded by job {v2}" in v1_job.error
    assert store.current_versions() == {STUDY: v2}
    from glioedge.runtime.daemon.operator import job_rows
    from glioedge.runtime.daemon.status_page import render_page

    page = render_page(job_rows(store), {"counts": store.counts()}, refresh=10)
    assert page.count("data-version='current'") == 1 and "data-version='superseded'" in page
    store.close()


def test_publishing_a_newer_version_cancels_the_older_ones_pending_sends(tmp_path: Path,
                                                                         capsys: Any) -> None:
    config, store, worker, pacs = _setup(tmp_path)
    v1 = store.add_job(f"{STUDY}#v1", STUDY, _inputs(tmp_path, ["a"]))
    worker.process(store.claim(3))  # v1 published; its PACS is down, nothing sent yet
    v2 = store.add_job(f"{STUDY}#v2", STUDY, _inputs(tmp_path, ["a", "b"]))
    worker.process(store.claim(3))
    assert [d.state for d in store.deliveries(v1)] == [DeliveryState.SUPERSEDED]
    worker.deliver_due()
    assert sorted(p.read_text() for p in pacs.rglob("seg.dcm")) == [f"SEG of job {v2}"]
    # the operator retries the older version afterwards: it stays superseded
    store.finish(v1, JobState.FAILED, "gave up")
    store.close()
    assert main(["retry", str(v1), "--state", str(config.watch.state_dir)]) == 0
    assert "superseded" in capsys.readouterr().out
    assert main(["jobs", "--state", str(config.watch.state_dir), "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert (rows[v2]["version"], rows[v1]["version"]) == ("current", "superseded")
    assert main(["jobs", "--state", str(config.watch.state_dir)]) == 0
    table = capsys.readouterr().out
    assert "VERSION" in table and "current" in table


def test_inputs_go_only_when_no_job_or_arriving_version_needs_them(tmp_path: Path) -> None:
    from glioedge.runtime.daemon.ownership import release_done_inputs

    _, store, worker, _ = _setup(tmp_path, keep_inputs=False)
    worker.destinations = {}
    first = _inputs(tmp_path, ["a", "b"])
    v1 = store.add_job(f"{STUDY}#v1", STUDY, first)
    v2 = store.add_job(f"{STUDY}#v2", STUDY, [*first, *_inputs(tmp_path, ["c"])])
    assert worker.process(store.claim(3)) is JobState.DONE  # v1 done while v2 is queued
    assert all(Path(f).exists() for f in first)  # v2 still needs them
    release_done_inputs(store)
    assert all(Path(f).exists() for f in first) and store.job(v1).files
    worker.process(store.claim(3))  # v2 done
    late = _inputs(tmp_path, ["d"])  # a third version is arriving, not yet queued
    release_done_inputs(store, arriving=[*first, *late])
    assert all(Path(f).exists() for f in first)
    release_done_inputs(store, arriving=late)
    assert not any(Path(f).exists() for f in store.job(v2).files or first)
    assert store.job(v1).files == () and store.job(v2).files == ()  # paths go with the files
    store.close()


def test_purge_keeps_a_failed_study_unless_dropped(tmp_path: Path, capsys: Any) -> None:
    config, store, _, _ = _setup(tmp_path)
    files = _inputs(tmp_path, ["x.dcm"])
    job = store.add_job("k-failed", STUDY, files)
    assert job is not None
    store.finish(job, JobState.FAILED, "gave up after 3 attempts")
    store.close()
    args = ["purge", "--state", str(config.watch.state_dir), "--out", str(config.watch.outbox),
            "--inbox", str(config.watch.inbox), "--older-than", "0s"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kept_failed_jobs"] == 1 and "failed job(s) kept" in out["note"]
    assert Path(files[0]).exists()
    assert main(["retry", str(job), "--state", str(config.watch.state_dir)]) == 0  # still there
    capsys.readouterr()
    store = JobStore(config.watch.state_dir / DB_NAME)
    store.finish(job, JobState.FAILED, "failed again")
    store.close()
    assert main([*args, "--include-failed"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["include_failed"] and out["dropped_failed_jobs"] == 1 and out["jobs"] == 1
    assert "dropped" in out["note"]


def test_quarantine_and_operator_output_carry_no_inbox_folder_names(tmp_path: Path, capsys: Any) -> None:
    config, store, worker, _ = _setup(tmp_path)
    files = _inputs(tmp_path, ["IM1", "IM2"])

    class _Bad(_WritingChild):
        def run(self, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
            return {"status": "input_error",
                    "message": f"{request['files'][0]}: no FLAIR series found"}

    worker.jobs = _Bad()  # type: ignore[assignment]
    job = store.add_job("k-bad", STUDY, files)
    assert worker.process(store.claim(3)) is JobState.QUARANTINED
    store.finish(job, JobState.QUARANTINED, f"{files[1]}: cannot be read")  # an absolute path
    store.close()
    written = list(config.watch.quarantine_dir.rglob("*"))
    text = " ".join(str(p) for p in written) + " ".join(
        p.read_text(errors="replace") for p in written if p.is_file() and p.suffix != ".dcm")
    for leak in ("DOE", "JOHN", "12345", "19700101"):
        assert leak not in text, leak
    reason = json.loads(next(config.watch.quarantine_dir.rglob("reason.json")).read_text())
    assert [f["source"].startswith("<inbox file ") for f in reason["files"]] == [True, True]
    state = str(config.watch.state_dir)
    assert main(["jobs", "--state", state]) == 0
    hidden = capsys.readouterr().out
    assert "DOE_JOHN" not in hidden and "<inbox file " in hidden
    assert main(["jobs", "--state", state]) == 0
    assert capsys.readouterr().out == hidden  # a stable form
    assert main(["jobs", "--state", state, "--json"]) == 0
    assert "DOE_JOHN" not in capsys.readouterr().out
    assert main(["jobs", "--state", state, "--show-paths", "--json"]) == 0
    assert "DOE_JOHN_12345_19700101" in capsys.readouterr().out


def test_each_quarantined_version_keeps_its_own_folder(tmp_path: Path) -> None:
    """Two versions of one study quarantined: the second (fewer files) neither overwrites the
    first's reason nor leaves the first's copies under its own reason."""
    config, store, worker, _ = _setup(tmp_path)
    files = _inputs(tmp_path, ["IM1", "IM2"])

    class _Bad(_WritingChild):
        def run(self, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
            return {"status": "input_error", "message": f"version {request['job_id']}: no FLAIR series"}

    worker.jobs = _Bad()  # type: ignore[assignment]
    first = store.add_job("k-v1", STUDY, files)
    assert worker.process(store.claim(3)) is JobState.QUARANTINED
    second = store.add_job("k-v2", STUDY, files[:1])
    assert worker.process(store.claim(3)) is JobState.QUARANTINED
    store.close()
    folders = sorted(p.name for p in (config.watch.quarantine_dir / STUDY).iterdir())
    assert folders == sorted([f"job-{first}", f"job-{second}"])
    for job, n in ((first, 2), (second, 1)):
        folder = config.watch.quarantine_dir / STUDY / f"job-{job}"
        reason = json.loads((folder / "reason.json").read_text())
        assert reason["job_id"] == job and f"version {job}:" in reason["reason"]
        assert len(reason["files"]) == n == len(list((folder / "files").iterdir()))


def test_hidden_paths_cover_the_study_folder_and_relative_forms_only() -> None:
    from glioedge.runtime.daemon.logging import hide_paths

    files = ["/srv/inbox/DOE_JOHN_1/t1ce/a.dcm", "/srv/inbox/DOE_JOHN_2/t1ce/b.dcm"]
    text = ("DOE_JOHN_2/t1ce/b.dcm: truncated; /srv/inbox/DOE_JOHN_1/t1ce/a.dcm unreadable; "
            "outbox /srv/outbox full; no FLAIR series in t1ce")
    hidden = hide_paths(text, files, inbox="/srv/inbox")
    assert "DOE_JOHN" not in hidden and hidden.count("<inbox file ") == 2
    assert "/srv/outbox" in hidden and "in t1ce" in hidden  # other folders and words stay
    assert hide_paths(text, files, inbox="/srv/inbox") == hidden
    # one study folder: names below it (series folders) stay readable
    one = ["/srv/inbox/DOE_JOHN_1/t1ce/a.dcm", "/srv/inbox/DOE_JOHN_1/flair/b.dcm"]
    assert hide_paths("t1ce/a.dcm: truncated", one, inbox="/srv/inbox") == "t1ce/a.dcm: truncated"
