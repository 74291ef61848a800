"""The daemon's inbox at scale: start-up, idle polls and new arrivals with 300 retained studies.

One run builds an inbox of ``--studies`` already processed studies (``--files`` small DICOM files
each, headers only: 300 × 134 ≈ 40 000 files by default) whose jobs the store knows as done, then
measures, for the code of ``--baseline-ref`` (default ``main``, exported with ``git archive``) and
for the working tree, each in its own process on the same data:

* **start-up**: a fresh daemon's first inbox poll with nothing new to do (building the scanner,
  reading what it needs, looking every study up in the job store), wall and CPU seconds;
* **idle poll**: the median of the polls that follow (nothing changed), and the CPU seconds the
  scan loop uses over ``--idle-seconds`` of real idling at the default 2 s poll interval
  (full rescans every ``rescan_interval`` included), scaled to one minute;
* **arrivals**: ``--new`` new studies (the synthetic FLAIR + T1CE study, cloned) copied into the
  inbox: the cost of the first poll that sees them and the time until all are queued.

Before each measured run the "previous life" of the daemon is replayed untimed: the retained
studies' jobs are recorded as done in a fresh job store. The new code runs first and scans them
once for that (filling its digest cache, as the earlier daemon would have); the old code reuses
the job keys it found (the key algorithm is the same; a difference would make the old code's
start-up queue them, which the bench refuses). Files are in the page cache for both
versions (a cold disk makes the old start-up, which reads and hashes every file, slower still).

``python bench/daemon_scale.py [--studies 300] [--files 134] [--new 5] [--idle-seconds 60]``
prints a table and writes ``bench/results/daemon_scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

MR = "1.2.840.10008.5.1.4.1.1.4"


# ---- data ---------------------------------------------------------------------------------------
def _retained(inbox: Path, studies: int, files: int) -> None:
    """Small header-only MR files: ``inbox/old<n>/<series>/<i>.dcm`` (one encoded template per
    series, its placeholder UIDs replaced by UIDs of the same length: 40 000 files in seconds)."""
    from io import BytesIO

    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    root = "1.2.826.0.1.3680043.9.7"
    study_ph, series_ph, sop_ph = f"{root}.999999", f"{root}.999999.9", f"{root}.999999.9.9999999"
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MR
    ds.SOPClassUID, ds.Modality, ds.PatientName, ds.PatientID = MR, "MR", "BENCH^SCALE", "BENCH-1"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_ph, series_ph
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop_ph
    for n in range(studies):
        for s, series in enumerate(("flair", "t1ce"), start=1):
            ds.SeriesDescription = series.upper()
            buffer = BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            template = buffer.getvalue()
            study, series_uid = f"{root}.{100000 + n}", f"{root}.{100000 + n}.{s}"
            template = template.replace(sop_ph.encode(), b"@" * len(sop_ph))  # protect the SOP UID
            template = template.replace(series_ph.encode(), series_uid.encode())
            template = template.replace(study_ph.encode(), study.encode())
            folder = inbox / f"old{n:03d}" / series
            folder.mkdir(parents=True)
            for i in range(files // 2 + (files % 2 if series == "t1ce" else 0)):
                sop = f"{series_uid}.{1000000 + i}".encode()
                (folder / f"{i:04d}.dcm").write_bytes(template.replace(b"@" * len(sop_ph), sop))


def _arrivals(out: Path, count: int) -> None:
    """``count`` clones (new UIDs) of the synthetic FLAIR + T1CE study under ``out/new<n>``."""
    import pydicom
    from pydicom.uid import generate_uid

    from tests.runtime.conftest import write_study

    source = write_study(out / "_source")
    for n in range(count):
        study, fors, series = generate_uid(), generate_uid(), {}
        for path in sorted(source.rglob("*.dcm")):
            ds = pydicom.dcmread(path)
            ds.StudyInstanceUID, ds.FrameOfReferenceUID = study, fors
            ds.SeriesInstanceUID = series.setdefault(ds.SeriesInstanceUID, generate_uid())
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            target = out / f"new{n}" / path.parent.name / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(target, enforce_file_format=True)
    shutil.rmtree(source)


# ---- one measured run (in a child process, with one version of glioedge on the path) -----------
def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def measure(data: Path, work: Path, idle_seconds: float) -> dict[str, Any]:
    import logging

    from glioedge.runtime.daemon.config import load_config
    from glioedge.runtime.daemon.jobs import JobState, JobStore
    from glioedge.runtime.daemon.service import DB_NAME, Daemon

    logging.getLogger("glioedge").setLevel(logging.ERROR)
    inbox_dir = data / "inbox"
    config = load_config(None, {"watch.inbox": str(inbox_dir), "watch.outbox": str(work / "outbox"),
                                "watch.state": str(work / "state"), "model.bundle": "unused",
                                "watch.quiet_time": 2.0, "watch.poll_interval": 2.0})
    for folder in (work / "outbox", work / "state"):
        folder.mkdir(parents=True, exist_ok=True)

    def new_inbox(daemon: Any) -> Any:
        if hasattr(daemon, "make_inbox"):
            return daemon.make_inbox(once=True)  # polling only, as the old code below
        from glioedge.runtime.daemon.inbox import Inbox

        w = config.watch
        return Inbox(w.inbox, exclude=[Path(w.outbox), w.state_dir, w.quarantine_dir], use_watchdog=False)

    # the previous life: the retained studies were processed (untimed). The first version run
    # scans them (the new code fills its digest cache as the earlier daemon did) and leaves the job
    # keys for the second, whose start-up would queue them all if its keys differed
    store = JobStore(config.watch.state_dir / DB_NAME)
    keys_file = data / "keys.json"
    if keys_file.exists():
        known = json.loads(keys_file.read_text())
    else:
        inbox = new_inbox(Daemon(config))
        studies, _ = inbox.scan()
        known = [[s.fingerprint(inbox.entries()), s.study_uid, s.files] for s in studies]
        inbox.close()
        keys_file.write_text(json.dumps(known))
    for key, uid, files in known:
        store.add_closed_job(key, uid, files, JobState.DONE, "")
    retained_files = sum(len(files) for _, _, files in known)

    # start-up: a new daemon's first poll, nothing new to do
    c0, t0 = _cpu(), time.perf_counter()
    daemon = Daemon(config)
    inbox = new_inbox(daemon)
    waiting = daemon._scan(store, inbox)
    startup_s, startup_cpu = time.perf_counter() - t0, _cpu() - c0
    queued = store.counts()["queued"]
    assert waiting == 0 and queued == 0, (waiting, queued)

    # idle: polls every poll_interval for idle_seconds, as the loop does
    polls = []
    c0, t_end = _cpu(), time.monotonic() + idle_seconds
    while time.monotonic() < t_end:
        t0 = time.perf_counter()
        daemon._scan(store, inbox)
        polls.append(time.perf_counter() - t0)
        time.sleep(config.watch.poll_interval)
    idle_cpu = _cpu() - c0

    # arrivals: new studies copied in; poll until they are queued
    arrivals = data / "arrivals"
    t_copy = time.perf_counter()
    for study in sorted(arrivals.iterdir()):
        shutil.copytree(study, inbox_dir / study.name)
    new_files = sum(1 for _ in arrivals.rglob("*.dcm"))
    arrival_polls = []
    while store.counts()["queued"] < len(list(arrivals.iterdir())):
        t0 = time.perf_counter()
        daemon._scan(store, inbox)
        arrival_polls.append(time.perf_counter() - t0)
        if time.perf_counter() - t_copy > 120:
            raise RuntimeError("new studies not queued within 120 s")
        time.sleep(0.5)
    to_queued = time.perf_counter() - t_copy
    inbox.close()
    for study in sorted(arrivals.iterdir()):  # leave the inbox as it was for the next version
        shutil.rmtree(inbox_dir / study.name)
    import glioedge

    return {"code": str(Path(glioedge.__file__).parent.parent), "retained_studies": len(known),
            "retained_files": retained_files,
            "startup_s": startup_s, "startup_cpu_s": startup_cpu,
            "idle_poll_median_s": statistics.median(polls), "idle_poll_max_s": max(polls),
            "idle_polls": len(polls), "idle_cpu_s_per_min": idle_cpu * 60.0 / idle_seconds,
            "new_studies": len(list(arrivals.iterdir())), "new_files": new_files,
            "first_arrival_poll_s": arrival_polls[0], "arrival_polls": len(arrival_polls),
            "new_studies_queued_after_s": to_queued}


# ---- driver -------------------------------------------------------------------------------------
def _run_version(src: Path, data: Path, idle: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="glioedge-scale-work-"))
    try:
        env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{ROOT}", "OMP_NUM_THREADS": "1"}
        out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--measure", str(data),
                              str(work), str(idle)], env=env, capture_output=True, text=True,
                             check=False)
        if out.returncode:
            raise RuntimeError(f"measuring {src} failed:\n{out.stderr[-3000:]}")
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=300)
    parser.add_argument("--files", type=int, default=134, help="files per retained study")
    parser.add_argument("--new", type=int, default=5, help="studies arriving")
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--baseline-ref", default="main", help="git ref of the 'before' code")
    parser.add_argument("--measure", nargs=3, metavar=("DATA", "WORK", "IDLE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:  # glioedge comes from PYTHONPATH: the version under test
        data, work, idle = args.measure
        print(json.dumps(measure(Path(data), Path(work), float(idle))))
        return
    sys.path.insert(0, str(ROOT))  # the driver: the working tree's helpers and test data writer
    from bench._common import print_table, write_json

    tmp = Path(tempfile.mkdtemp(prefix="glioedge-scale-"))
    try:
        t0 = time.perf_counter()
        _retained(tmp / "inbox", args.studies, args.files)
        _arrivals(tmp / "arrivals", args.new)
        print(f"built {args.studies} retained studies + {args.new} arrivals in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        before_src = tmp / "before"
        before_src.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline_ref, "glioedge"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(before_src)], input=archive, check=True)
        after = _run_version(ROOT, tmp, args.idle_seconds)  # first: it records the job keys
        results = {"before": _run_version(before_src, tmp, args.idle_seconds), "after": after}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    b, a = results["before"], results["after"]
    keys = ["startup_s", "startup_cpu_s", "idle_poll_median_s", "idle_poll_max_s",
            "idle_cpu_s_per_min", "first_arrival_poll_s", "new_studies_queued_after_s"]
    rows = [{"metric": k, "before": b[k], "after": a[k], "after/before": a[k] / b[k] if b[k] else 0.0}
            for k in keys]
    print(f"\n{a['retained_studies']} retained studies / {a['retained_files']} files, "
          f"{a['new_studies']} new studies / {a['new_files']} files; before = {args.baseline_ref}, "
          "after = this working tree; one process each, same data\n")
    print_table(rows, ["metric", "before", "after", "after/before"])
    write_json("daemon_scale", {"args": {k: v for k, v in vars(args).items() if k != "measure"},
                                "before": b, "after": a, "load_1min": os.getloadavg()[0]})


if __name__ == "__main__":
    main()
