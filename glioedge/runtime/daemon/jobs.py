"""The job store: one SQLite file (WAL) that survives ``kill -9``.

A job is one study version (StudyInstanceUID + its SOP Instance UIDs and file contents). States::

    queued ──► running ──► delivering ──► done
       ▲          │  │                  └─► failed      (a delivery gave up)
       └──────────┘  ├─► quarantined                     (bad input)
     (retry/crash)   ├─► failed                          (max_attempts starts)
                     └─► superseded                      (a newer version was published)

A job found ``running`` at start-up was interrupted by a daemon that was killed: it goes back to
``queued`` behind the others, its start counted (a job that hangs until the daemon is killed must
not run first again forever); a SIGTERM re-queues the running job itself, uncharged.
Inference runs in a child process, so a job that crashes (segfault, out of memory) is seen by the
daemon and counts as an attempt; a study that crashes every time ends ``failed``.
A job is one *version* of its study and publishes to its own folder. The study's *current*
version is its newest published job (highest id, outputs written, not superseded): a job that
finishes after a newer version of its study was published never goes out (``superseded``), and
publishing a version cancels the pending deliveries of older ones (:meth:`JobStore.outputs_written`).
Each destination of a job has a delivery row (``pending`` → ``acked`` / ``failed``) with its
attempt count and next attempt time, so a restart re-sends only what was not acknowledged.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from glioedge.runtime.daemon.jobs_schema import (
    SCHEMA,
    Delivery,
    DeliveryState,
    Job,
    JobState,
    delivery_from_row,
    job_from_row,
)

__all__ = ["DB_NAME", "Delivery", "DeliveryState", "Job", "JobState", "JobStore"]

#: The job store's file name in the state folder.
DB_NAME = "jobs.sqlite"


class JobStore:
    """SQLite job store; one instance per thread (connections are not shared).

    Args:
        path: The database file (created with its folder).
        shared: Allow use from several threads (the caller serialises access).
    """

    def __init__(self, path: str | Path, shared: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                   check_same_thread=not shared)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA busy_timeout=30000")
        self._wal()
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def _wal(self) -> None:
        """Switch to WAL (persistent in the file) unless it already is: the switch needs an
        exclusive lock, and SQLite answers "database is locked" at once, without waiting, when
        another connection (the daemon's, a ``glioedge jobs``) holds the file at that moment."""
        deadline = time.monotonic() + 30.0
        while True:
            try:
                mode = self._db.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() == "wal":
                    return
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except BaseException:  # e.g. disk full or I/O error: never leave the transaction open
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    # ---- jobs -------------------------------------------------------------------------------
    def add_job(self, key: str, study_uid: str, files: Iterable[str]) -> int | None:
        """Queue a job unless one with the same key exists (in any state).

        Returns:
            The new job's id, or None when the key was already known.
        """
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO jobs (key, study_uid, state, files, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (key, study_uid, JobState.QUEUED.value, json.dumps(sorted(files)), now, now))
            return cur.lastrowid if cur.rowcount else None

    def add_closed_job(self, key: str, study_uid: str, files: Iterable[str], state: JobState,
                       error: str) -> int | None:
        """Record a job that ends at once (e.g. files quarantined before any processing)."""
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO jobs (key, study_uid, state, files, error, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, study_uid, state.value, json.dumps(sorted(files)), error, now, now))
            return cur.lastrowid if cur.rowcount else None

    def has_key(self, key: str) -> bool:
        """Whether a job with this key exists."""
        return self._db.execute("SELECT 1 FROM jobs WHERE key = ?", (key,)).fetchone() is not None

    def recover(self, delay: float = 0.0) -> int:
        """Put jobs left ``running`` by a daemon that was killed back in the queue, due after
        ``delay`` seconds (other queued jobs go first).

        The start stays counted: a job that hangs until someone kills the daemon would otherwise
        run first again after every restart, forever; ``max_attempts`` ends it. (A stop by SIGTERM
        re-queues the running job itself, uncharged.)

        Returns:
            How many were re-queued.
        """
        now = time.time()
        with self._tx() as db:
            return db.execute(
                "UPDATE jobs SET state = ?, error = 'interrupted: the daemon was killed while the job "
                "ran', next_attempt_at = ?, updated_at = ? WHERE state = ?",
                (JobState.QUEUED.value, now + delay, now, JobState.RUNNING.value)).rowcount

    def last_created(self, study_uid: str) -> float | None:
        """When the newest job of this study was created (None: never seen)."""
        row = self._db.execute("SELECT MAX(created_at) FROM jobs WHERE study_uid = ?",
                               (study_uid,)).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def claim(self, max_attempts: int) -> Job | None:
        """Take the due queued job that waited longest, mark it running and count the attempt.

        Jobs that already used ``max_attempts`` starts are marked failed instead.
        """
        now = time.time()
        with self._tx() as db:
            while True:
                row = db.execute(
                    # a job put back after a failure or an interruption goes behind the fresh ones
                    "SELECT * FROM jobs WHERE state = ? AND next_attempt_at <= ? "
                    "ORDER BY next_attempt_at, id LIMIT 1",
                    (JobState.QUEUED.value, now)).fetchone()
                if row is None:
                    return None
                if row["attempts"] >= max_attempts:
                    db.execute("UPDATE jobs SET state = ?, error = ?, updated_at = ? WHERE id = ?",
                               (JobState.FAILED.value,
                                f"gave up after {row['attempts']} attempts; last error: {row['error']}",
                                now, row["id"]))
                    continue
                db.execute("UPDATE jobs SET state = ?, attempts = attempts + 1, updated_at = ? "
                           "WHERE id = ?", (JobState.RUNNING.value, now, row["id"]))
                return self.job(row["id"])

    def requeue(self, job_id: int, error: str, delay: float, *, refund: bool = False) -> None:
        """Send a running job back to the queue with an error, due after ``delay`` seconds.

        Args:
            job_id: The job.
            error: Why, for the operator.
            delay: Seconds before it may run again.
            refund: Give back the attempt (environmental errors such as a full outbox must not
                exhaust ``max_attempts``).
        """
        now = time.time()
        with self._tx() as db:
            db.execute("UPDATE jobs SET state = ?, error = ?, next_attempt_at = ?, updated_at = ?, "
                       "attempts = MAX(0, attempts - ?) WHERE id = ?",
                       (JobState.QUEUED.value, error, now + delay, now, int(refund), job_id))

    def release(self, job_id: int, error: str, delay: float) -> bool:
        """Re-queue a job still ``running`` after an unexpected error (its attempt stays counted).

        Returns:
            Whether the job was running (a job already moved on is left alone).
        """
        now = time.time()
        with self._tx() as db:
            return db.execute("UPDATE jobs SET state = ?, error = ?, next_attempt_at = ?, updated_at = ? "
                              "WHERE id = ? AND state = ?",
                              (JobState.QUEUED.value, error, now + delay, now, job_id,
                               JobState.RUNNING.value)).rowcount > 0

    def finish(self, job_id: int, state: JobState, error: str = "") -> None:
        """Close a job as done, failed or quarantined."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET state = ?, error = ?, updated_at = ? WHERE id = ?",
                       (state.value, error, time.time(), job_id))

    def forget_files(self, job_id: int) -> None:
        """Drop a job's input paths (its inputs were purged; folder names may carry PHI)."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET files = '[]', updated_at = ? WHERE id = ?", (time.time(), job_id))

    def outputs_held(self, job_id: int, output_dir: str, seg_sop_uid: str, reason: str) -> None:
        """Record outputs that the delivery policy holds back: the job is quarantined with
        ``reason`` and no delivery is created, in one transaction."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET state = ?, error = ?, output_dir = ?, seg_sop_uid = ?, "
                       "updated_at = ? WHERE id = ?",
                       (JobState.QUARANTINED.value, reason, output_dir, seg_sop_uid, time.time(), job_id))

    def outputs_written(self, job_id: int, output_dir: str, seg_sop_uid: str,
                        destinations: Iterable[str]) -> JobState:
        """Record the outputs and create one pending delivery per destination, atomically.

        With no destination the job is done at once. A job older than the newest published
        version of its study is ``superseded`` instead (nothing is delivered); publishing a newer
        version supersedes older versions still waiting for delivery.

        Returns:
            The job's state afterwards (``delivering``, ``done`` or ``superseded``).
        """
        destinations = list(destinations)
        state = JobState.DELIVERING if destinations else JobState.DONE
        now = time.time()
        with self._tx() as db:
            study = db.execute("SELECT study_uid FROM jobs WHERE id = ?", (job_id,)).fetchone()
            newer = _newest_published(db, study[0], after=job_id) if study else None
            if newer is not None:
                db.execute("UPDATE jobs SET state = ?, error = ?, output_dir = ?, seg_sop_uid = ?, "
                           "updated_at = ? WHERE id = ?",
                           (JobState.SUPERSEDED.value, _superseded_by(newer), output_dir,
                            seg_sop_uid, now, job_id))
                return JobState.SUPERSEDED
            older = [r[0] for r in db.execute(
                "SELECT id FROM jobs WHERE study_uid = ? AND id < ? AND state = ?",
                (study[0], job_id, JobState.DELIVERING.value))] if study else []
            for old in older:
                db.execute("UPDATE deliveries SET state = ?, error = ? WHERE job_id = ? AND state = ?",
                           (DeliveryState.SUPERSEDED.value, _superseded_by(job_id), old,
                            DeliveryState.PENDING.value))
                db.execute("UPDATE jobs SET state = ?, error = ?, updated_at = ? WHERE id = ?",
                           (JobState.SUPERSEDED.value, _superseded_by(job_id), now, old))
            db.execute("UPDATE jobs SET state = ?, error = '', output_dir = ?, seg_sop_uid = ?, "
                       "updated_at = ? WHERE id = ?",
                       (state.value, output_dir, seg_sop_uid, time.time(), job_id))
            db.executemany(
                "INSERT OR IGNORE INTO deliveries (job_id, destination, state) VALUES (?, ?, ?)",
                [(job_id, d, DeliveryState.PENDING.value) for d in destinations])
        return state

    def current_versions(self) -> dict[str, int]:
        """Study UID → id of its current version (newest published job)."""
        rows = self._db.execute(
            "SELECT study_uid, MAX(id) FROM jobs WHERE output_dir != '' AND state != ? "
            "GROUP BY study_uid", (JobState.SUPERSEDED.value,))
        return {r[0]: int(r[1]) for r in rows if r[0]}

    def job(self, job_id: int) -> Job:
        """One job by id.

        Raises:
            KeyError: no such job.
        """
        row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(f"no job {job_id}")
        return job_from_row(row)

    def jobs(self, state: JobState | None = None) -> list[Job]:
        """All jobs (optionally of one state), oldest first."""
        if state is None:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY id").fetchall()
        else:
            rows = self._db.execute("SELECT * FROM jobs WHERE state = ? ORDER BY id",
                                    (JobState(state).value,)).fetchall()
        return [job_from_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Number of jobs per state (every state present, zeros included)."""
        counts = {s.value: 0 for s in JobState}
        for row in self._db.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state"):
            counts[row["state"]] = row["n"]
        return counts

    def delivery_counts(self) -> dict[tuple[str, str], int]:
        """Number of deliveries per (destination, state)."""
        rows = self._db.execute("SELECT destination, state, COUNT(*) AS n FROM deliveries "
                                "GROUP BY destination, state")
        return {(r["destination"], r["state"]): r["n"] for r in rows}

    def idle(self) -> bool:
        """Whether nothing is queued, running or waiting for delivery."""
        row = self._db.execute("SELECT COUNT(*) FROM jobs WHERE state IN (?, ?, ?)",
                               (JobState.QUEUED.value, JobState.RUNNING.value,
                                JobState.DELIVERING.value)).fetchone()
        return row[0] == 0

    # ---- deliveries -------------------------------------------------------------------------
    def due_deliveries(self, now: float | None = None) -> list[Delivery]:
        """Pending deliveries whose next attempt is due."""
        rows = self._db.execute(
            "SELECT d.* FROM deliveries d JOIN jobs j ON j.id = d.job_id WHERE d.state = ? "
            "AND j.state = ? AND d.next_attempt_at <= ? ORDER BY d.next_attempt_at, d.job_id",
            (DeliveryState.PENDING.value, JobState.DELIVERING.value,
             time.time() if now is None else now)).fetchall()
        return [delivery_from_row(r) for r in rows]

    def deliveries(self, job_id: int | None = None) -> list[Delivery]:
        """Delivery rows (of one job or all)."""
        if job_id is None:
            rows = self._db.execute("SELECT * FROM deliveries ORDER BY job_id, destination")
        else:
            rows = self._db.execute("SELECT * FROM deliveries WHERE job_id = ? ORDER BY destination",
                                    (job_id,))
        return [delivery_from_row(r) for r in rows.fetchall()]

    def delivery_result(self, job_id: int, destination: str, *, ok: bool, error: str = "",
                        retry_in: float | None = None) -> JobState:
        """Record one send; close the job when no delivery is pending any more.

        Args:
            job_id: The job.
            destination: The destination's name.
            ok: Whether the destination acknowledged the SEG.
            error: What went wrong.
            retry_in: Seconds before the next attempt, or None to give up (delivery failed).

        Returns:
            The job's state afterwards.
        """
        now = time.time()
        with self._tx() as db:
            current = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if current is not None and current[0] == JobState.SUPERSEDED.value:
                # superseded while this send was under way: what the destination holds is
                # recorded truthfully (acked), the job stays superseded
                db.execute("UPDATE deliveries SET attempts = attempts + 1, state = CASE WHEN ? "
                           "THEN ? ELSE state END, acked_at = CASE WHEN ? THEN ? ELSE acked_at END "
                           "WHERE job_id = ? AND destination = ?",
                           (ok, DeliveryState.ACKED.value, ok, now, job_id, destination))
                return JobState.SUPERSEDED
            if ok:
                db.execute("UPDATE deliveries SET state = ?, attempts = attempts + 1, error = '', "
                           "acked_at = ? WHERE job_id = ? AND destination = ?",
                           (DeliveryState.ACKED.value, now, job_id, destination))
            else:
                state = DeliveryState.PENDING if retry_in is not None else DeliveryState.FAILED
                db.execute("UPDATE deliveries SET state = ?, attempts = attempts + 1, error = ?, "
                           "next_attempt_at = ? WHERE job_id = ? AND destination = ?",
                           (state.value, error, now + (retry_in or 0.0), job_id, destination))
            states = {r[0] for r in db.execute("SELECT state FROM deliveries WHERE job_id = ?",
                                               (job_id,))} - {DeliveryState.SUPERSEDED.value}
            if DeliveryState.PENDING.value in states:
                return JobState.DELIVERING
            final = JobState.FAILED if DeliveryState.FAILED.value in states else JobState.DONE
            errors = [r[0] for r in db.execute("SELECT destination || ': ' || error FROM deliveries "
                                               "WHERE job_id = ? AND state = ?",
                                               (job_id, DeliveryState.FAILED.value))]
            db.execute("UPDATE jobs SET state = ?, error = ?, updated_at = ? WHERE id = ?",
                       (final.value, "; ".join(errors), now, job_id))
            return final

    def retry(self, job_id: int) -> JobState:
        """Give a failed or quarantined job another run (``glioedge retry``).

        A job whose outputs were written and whose delivery failed is delivered again (its failed
        deliveries back to pending); any other one is queued again with its attempts reset.

        Returns:
            The job's new state.

        Raises:
            KeyError: no such job.
            ValueError: the job is not failed or quarantined, or its inputs were purged.
        """
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise KeyError(f"no job {job_id}")
            state = JobState(row["state"])
            if state not in (JobState.FAILED, JobState.QUARANTINED):
                raise ValueError(f"job {job_id} is {state.value}: only a failed or quarantined job "
                                 "can be retried")
            newer = _newest_published(db, row["study_uid"], after=job_id)
            if newer is not None:  # an older version never replaces a published newer one
                db.execute("UPDATE jobs SET state = ?, error = ?, updated_at = ? WHERE id = ?",
                           (JobState.SUPERSEDED.value, _superseded_by(newer), now, job_id))
                db.execute("UPDATE deliveries SET state = ? WHERE job_id = ? AND state = ?",
                           (DeliveryState.SUPERSEDED.value, job_id, DeliveryState.FAILED.value))
                return JobState.SUPERSEDED
            failed = db.execute("SELECT COUNT(*) FROM deliveries WHERE job_id = ? AND state = ?",
                                (job_id, DeliveryState.FAILED.value)).fetchone()[0]
            if failed and row["output_dir"]:
                db.execute("UPDATE deliveries SET state = ?, attempts = 0, next_attempt_at = 0, "
                           "error = '' WHERE job_id = ? AND state = ?",
                           (DeliveryState.PENDING.value, job_id, DeliveryState.FAILED.value))
                new = JobState.DELIVERING
            else:
                if row["files"] == "[]":
                    raise ValueError(f"job {job_id} cannot run again: its input files were purged")
                new = JobState.QUEUED
            db.execute("UPDATE jobs SET state = ?, attempts = 0, next_attempt_at = 0, error = '', "
                       "updated_at = ? WHERE id = ?", (new.value, now, job_id))
            return new

    def times(self, job_id: int) -> tuple[float, float]:
        """``(created_at, updated_at)`` of a job."""
        row = self._db.execute("SELECT created_at, updated_at FROM jobs WHERE id = ?",
                               (job_id,)).fetchone()
        if row is None:
            raise KeyError(f"no job {job_id}")
        return float(row[0]), float(row[1])

    def delete_closed(self, job_ids: Iterable[int], before: float) -> int:
        """Delete closed (done, failed, quarantined) jobs last changed before ``before``, with their
        delivery rows; a job in flight (or changed since) is never deleted.

        Returns:
            How many jobs were deleted.
        """
        closed = (JobState.DONE.value, JobState.FAILED.value, JobState.QUARANTINED.value,
                  JobState.SUPERSEDED.value)
        deleted = 0
        with self._tx() as db:
            for job_id in job_ids:
                row = db.execute("SELECT 1 FROM jobs WHERE id = ? AND state IN (?, ?, ?, ?) AND "
                                 "updated_at < ?", (job_id, *closed, before)).fetchone()
                if row is None:
                    continue
                db.execute("DELETE FROM deliveries WHERE job_id = ?", (job_id,))
                db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
                deleted += 1
        return deleted

    def dump(self) -> dict[str, Any]:
        """Everything, JSON-serialisable (for ``glioedge watch --status`` and tests)."""
        return {"jobs": [dataclasses.asdict(j) for j in self.jobs()],
                "deliveries": [dataclasses.asdict(d) for d in self.deliveries()]}


def _newest_published(db: sqlite3.Connection, study_uid: str, after: int) -> int | None:
    """The id of the newest published (outputs written, not superseded) job of the study newer
    than job ``after``, or None."""
    if not study_uid:
        return None
    row = db.execute("SELECT MAX(id) FROM jobs WHERE study_uid = ? AND id > ? AND output_dir != '' "
                     "AND state != ?", (study_uid, after, JobState.SUPERSEDED.value)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def _superseded_by(job_id: int) -> str:
    return f"superseded by job {job_id} (a newer version of the study)"
