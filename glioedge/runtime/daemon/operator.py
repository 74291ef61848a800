"""What the operator does instead of SQL by hand: list jobs, retry one, purge old data.

``glioedge jobs``, ``glioedge retry JOB`` and ``glioedge purge --older-than 30d`` use these
functions against the daemon's state folder (the same configuration as ``watch``); they are safe
while the daemon runs (SQLite transactions; nothing of a job in flight is touched).

The job table shows the study by its StudyInstanceUID, never by patient name or ID, and error
texts pass through the log scrubber (paths below the inbox, whose folder names may carry
patient names, are hidden).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import shutil
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from glioedge.errors import ConfigError
from glioedge.runtime.daemon.config import DaemonConfig, parse_age
from glioedge.runtime.daemon.jobs import DB_NAME, Job, JobState, JobStore
from glioedge.runtime.daemon.logging import hide_paths
from glioedge.runtime.daemon.names import safe_uid
from glioedge.runtime.daemon.ownership import held_files

logger = logging.getLogger(__name__)

IN_FLIGHT = (JobState.QUEUED, JobState.RUNNING, JobState.DELIVERING)
__all__ = ["format_table", "job_rows", "open_store", "parse_age", "purge", "retry"]


def open_store(config: DaemonConfig) -> JobStore:
    """The daemon's job store, read from its state folder.

    Raises:
        ConfigError: neither ``--state`` nor the outbox is set, or there is no job store there.
    """
    if not (config.watch.state or config.watch.outbox):
        raise ConfigError("no state folder: give --state, --out or a --config with [watch] outbox/state")
    path = config.watch.state_dir / DB_NAME
    if not path.is_file():
        raise ConfigError(f"no job store at {path}: is this the daemon's --state (or --out)?")
    return JobStore(path)


@dataclasses.dataclass(frozen=True)
class JobRow:
    """One line of ``glioedge jobs`` and of the status page (no patient data)."""

    id: int
    study_uid: str
    state: str
    attempts: int
    error: str
    created: float
    updated: float
    output_dir: str
    report: dict[str, Any]
    #: ``current`` (the study's newest published version), ``older`` (published, a newer version
    #: is current), ``superseded`` (never delivered: a newer version was published first) or ``-``.
    version: str = "-"

    @property
    def volumes(self) -> dict[str, float]:
        """ET/TC/WT (and NCR/ED) in mL from the report, if the job wrote one."""
        return dict(self.report.get("volumes_ml") or {})

    @property
    def verdict(self) -> str:
        """The quality verdict (ok | review | reject) from the report, ``""`` without one."""
        return str((self.report.get("quality") or {}).get("verdict", ""))

    @property
    def total_s(self) -> float | None:
        """Seconds of the segmentation (the report's ``total``), if known."""
        value = (self.report.get("timings_s") or {}).get("total")
        return None if value is None else float(value)

    def as_dict(self) -> dict[str, Any]:
        """JSON form (``glioedge jobs --json``)."""
        out = dataclasses.asdict(self)
        out.pop("report")
        out.update(volumes_ml=self.volumes, total_s=self.total_s, quality=_quality_brief(self.report),
                   bundle_id=self.report.get("bundle_id"), backend=self.report.get("backend"))
        return out


def _quality_brief(report: dict[str, Any]) -> dict[str, Any] | None:
    """The verdict, finding and reasons of a report's ``quality`` (its scores left out)."""
    quality = report.get("quality")
    if not quality:
        return None
    return {k: quality.get(k) for k in ("verdict", "finding", "reasons")}


def read_report(output_dir: str) -> dict[str, Any]:
    """A job's ``report.json`` (``{}`` when absent or unreadable)."""
    if not output_dir:
        return {}
    try:
        data = json.loads((Path(output_dir) / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _version(job: Job, current: dict[str, int]) -> str:
    if job.state is JobState.SUPERSEDED:
        return "superseded"
    if current.get(job.study_uid) == job.id:
        return "current"
    return "older" if job.output_dir and job.study_uid in current else "-"


def job_rows(store: JobStore, limit: int | None = None, state: str | None = None, *,
             show_paths: bool = False, inbox: str | None = None) -> list[JobRow]:
    """The newest jobs first (at most ``limit``), errors scrubbed of private values and, unless
    ``show_paths``, of the job's input paths (a stable hashed form instead)."""
    from glioedge.runtime.daemon.logging import scrub

    jobs = store.jobs(JobState(state) if state else None)
    jobs.sort(key=lambda j: j.id, reverse=True)
    current = store.current_versions()
    rows = []
    for job in jobs[:limit] if limit else jobs:
        created, updated = store.times(job.id)
        error = job.error if show_paths else scrub(hide_paths(job.error, job.files, inbox))
        rows.append(JobRow(job.id, job.study_uid, job.state.value, job.attempts, error,
                           created, updated, job.output_dir, read_report(job.output_dir),
                           _version(job, current)))
    return rows


def utc_time(t: float) -> str:
    """A Unix time as ``YYYY-MM-DD HH:MM:SS`` in UTC (the job table and the status page)."""
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def format_table(rows: Sequence[JobRow], error_width: int = 60) -> str:
    """A fixed-width text table (UTC times)."""
    head = ("ID", "STUDY UID", "STATE", "ATT", "VERSION", "QUALITY", "CREATED (UTC)", "UPDATED (UTC)",
            "RUN S",
            "LAST ERROR")
    lines = [head]
    for r in rows:
        error = r.error.replace("\n", " ")
        if len(error) > error_width:
            error = error[: error_width - 1] + "…"
        lines.append((str(r.id), r.study_uid or "-", r.state, str(r.attempts), r.version,
                      r.verdict.upper() or "-", utc_time(r.created),
                      utc_time(r.updated), "-" if r.total_s is None else f"{r.total_s:.1f}", error or "-"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line[:-1], widths, strict=True)) + "  " + line[-1]
                     for line in lines) + "\n"


def retry(store: JobStore, job_id: int) -> JobState:
    """Run a failed or quarantined job again (or deliver again what it failed to deliver).

    Raises:
        ConfigError: no such job, or a job that is not failed/quarantined (with its state).
    """
    try:
        state = store.retry(job_id)
    except KeyError:
        raise ConfigError(f"no job {job_id} in {store.path}") from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    logger.info("job retried by the operator", extra={"event": "retry", "job_id": job_id,
                                                       "state": state.value})
    return state


@dataclasses.dataclass
class PurgeReport:
    """What ``purge`` removed (or, with ``dry_run``, would remove)."""

    inbox_files: int = 0
    outbox_folders: int = 0
    quarantine_folders: int = 0
    jobs: int = 0
    kept_unprocessed_studies: int = 0
    #: Files the daemon never processes (not DICOM, DICOMDIR, non-MR objects such as SR),
    #: removed once older than the limit.
    ignored_files: int = 0
    #: Failed jobs whose inputs, folders and rows were kept (not retried, quarantined or dropped).
    kept_failed_jobs: int = 0
    #: Failed jobs dropped with ``--include-failed`` (their inputs and rows go with the limit).
    dropped_failed_jobs: int = 0


def _newest_mtime(path: Path) -> float:
    newest = path.lstat().st_mtime
    if path.is_dir():
        for p in path.rglob("*"):
            try:
                newest = max(newest, p.lstat().st_mtime)
            except OSError:
                continue
    return newest


def _parent_mtimes(paths: Iterable[str], root: Path) -> dict[Path, float]:
    """The mtime of every folder between ``paths`` and ``root``, taken before purge touches any."""
    root, out = root.resolve(), {}
    for name in paths:
        parent = Path(name).resolve().parent
        while parent != root and root in parent.parents and parent not in out:
            try:
                out[parent] = parent.stat().st_mtime
            except OSError:
                out[parent] = float("inf")
            parent = parent.parent
    return out


def _remove_empty_parents(path: Path, root: Path, quiet: dict[Path, float], cutoff: float) -> None:
    """Remove the folders left empty above ``path``, but only those that were quiet (unchanged
    since ``cutoff`` before purge began): a folder the receiver has just created or written into
    is kept."""
    root, parent = root.resolve(), path.resolve().parent
    while parent != root and root in parent.parents:
        if not quiet.get(parent, float("inf")) < cutoff:
            return
        try:
            parent.rmdir()
        except OSError:
            return
        parent = parent.parent


def _folders(root: Path, skip: Iterable[Path]) -> list[Path]:
    skipped = {p.resolve() for p in skip}
    if not root.is_dir():
        return []
    return [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(("_", "."))
            and p.resolve() not in skipped]


def purge(config: DaemonConfig, older_than_s: float, *, now: float | None = None,
          dry_run: bool = False, include_failed: bool = False) -> PurgeReport:
    """Remove what is older than ``older_than_s`` seconds: inputs, outputs, quarantine, job rows.

    * inbox: a study's files go only as a whole, only when its newest file is older than the
      limit and its present version was processed to a closed job (a study never processed is
      kept and counted in ``kept_unprocessed_studies``); an unreadable file once quarantined and
      older than the limit goes too, and so does a file the daemon never processes (not DICOM,
      a DICOMDIR, a non-MR object such as an SR: ``ignored_files``); a folder left empty goes
      only when it was unchanged for the limit (one the receiver just created stays);
    * outbox and quarantine: ``<study uid>`` folders whose newest file is older than the limit;
    * job rows: closed (done, failed, quarantined) jobs last changed before the limit whose inputs
      are no longer in the inbox (else the daemon would take the study for a new one);
    * never anything of a job in flight (queued, running, delivering): not its inputs, not its
      study's outbox or quarantine folder, not its row;
    * nor of a failed job (it keeps its inputs until it is retried to success, quarantined or
      dropped), unless ``include_failed`` (``glioedge purge --include-failed``). Which inputs a job
      holds is decided by :mod:`.ownership`.

    Raises:
        ConfigError: no inbox, no outbox/state configured, or no job store there.
    """
    from glioedge.runtime.daemon.inbox import Inbox

    now = time.time() if now is None else now
    cutoff = now - older_than_s
    w = config.watch
    if not w.inbox or not Path(w.inbox).is_dir():
        # without the inbox, a job row could go while its study is still there: the daemon would
        # take it for a new study and process it again
        raise ConfigError(f"purge needs the daemon's inbox (--inbox or [watch] inbox); "
                          f"{w.inbox or 'none given'} is not a folder")
    report = PurgeReport()
    store = open_store(config)
    try:
        jobs = store.jobs()
        holding = IN_FLIGHT if include_failed else (*IN_FLIGHT, JobState.FAILED)
        in_flight = [j for j in jobs if j.state in holding]
        busy_studies = {safe_uid(j.study_uid) for j in in_flight if j.study_uid}
        busy_files = held_files(store, include_failed=include_failed)
        closed_keys = {j.key for j in jobs if j.state not in holding}
        failed = [j for j in jobs if j.state is JobState.FAILED]
        if not include_failed:
            report.kept_failed_jobs = len(failed)
        all_keys = {j.key for j in jobs}
        present_keys: set[str] = set()
        outbox, quarantine_dir = Path(w.outbox), w.quarantine_dir
        inbox = Inbox(w.inbox, exclude=[outbox, w.state_dir, quarantine_dir], use_watchdog=False)
        try:
            studies, broken = inbox.scan(now)
            entries = inbox.entries()
        finally:
            inbox.close()
        ignored = inbox.ignored()
        doomed: list[str] = []
        for study in studies:
            key = study.fingerprint(entries)
            newest = max(entries[f].mtime for f in study.files)
            removable = (key in closed_keys and newest < cutoff
                         and safe_uid(study.study_uid) not in busy_studies
                         and not busy_files.intersection(study.files))
            if key not in all_keys:
                report.kept_unprocessed_studies += 1
            if not removable:
                present_keys.add(key)
                continue
            doomed.extend(study.files)
        for bad in broken:
            if bad.key in closed_keys and entries[bad.path].mtime < cutoff:
                doomed.append(bad.path)
            else:
                present_keys.add(bad.key)
        never = [f for f in sorted(ignored) if entries[f].mtime < cutoff and f not in busy_files]
        quiet = _parent_mtimes([*doomed, *never], Path(w.inbox))
        report.inbox_files += _unlink(doomed, Path(w.inbox), dry_run, quiet, cutoff)
        report.ignored_files += _unlink(never, Path(w.inbox), dry_run, quiet, cutoff)
        for root, attr in ((outbox, "outbox_folders"), (quarantine_dir, "quarantine_folders")):
            for folder in _folders(root, skip=[w.state_dir, quarantine_dir] if root == outbox else []):
                if folder.name in busy_studies or _newest_mtime(folder) >= cutoff:
                    continue
                if not dry_run:
                    shutil.rmtree(folder)
                setattr(report, attr, getattr(report, attr) + 1)
        old = [j.id for j in jobs if j.state not in holding and j.key not in present_keys]
        if include_failed:
            failed_ids = {j.id for j in failed}
            report.dropped_failed_jobs = sum(1 for i in old if i in failed_ids
                                             and store.times(i)[1] < cutoff)
        if dry_run:
            report.jobs = sum(1 for i in old if store.times(i)[1] < cutoff)
        else:
            report.jobs = store.delete_closed(old, cutoff)
    finally:
        store.close()
    logger.info("purge", extra={"event": "purge", "older_than_s": older_than_s, "dry_run": dry_run,
                                **dataclasses.asdict(report)})
    return report


def _unlink(files: Iterable[str], root: Path, dry_run: bool, quiet: dict[Path, float],
            cutoff: float) -> int:
    count = 0
    for name in files:
        path = Path(name)
        if not dry_run:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            _remove_empty_parents(path, root, quiet, cutoff)
        count += 1
    return count

