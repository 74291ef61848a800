"""The job store's vocabulary: job and delivery states, the rows (:class:`Job`,
:class:`Delivery`), the SQLite schema and the row → object conversions (:mod:`.jobs` is the store)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from enum import Enum

__all__ = ["SCHEMA", "Delivery", "DeliveryState", "Job", "JobState", "delivery_from_row", "job_from_row"]


class JobState(str, Enum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    DELIVERING = "delivering"
    DONE = "done"
    FAILED = "failed"
    QUARANTINED = "quarantined"
    SUPERSEDED = "superseded"


class DeliveryState(str, Enum):
    """Where one destination's copy of a job's SEG is."""

    PENDING = "pending"
    ACKED = "acked"
    FAILED = "failed"
    SUPERSEDED = "superseded"


SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    study_uid TEXT NOT NULL,
    state TEXT NOT NULL,
    files TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    output_dir TEXT NOT NULL DEFAULT '',
    seg_sop_uid TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, next_attempt_at);
CREATE INDEX IF NOT EXISTS jobs_study ON jobs(study_uid, created_at);
CREATE TABLE IF NOT EXISTS deliveries (
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    destination TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    acked_at REAL,
    PRIMARY KEY (job_id, destination)
);
"""


@dataclasses.dataclass(frozen=True)
class Job:
    """One row of the ``jobs`` table."""

    id: int
    key: str
    study_uid: str
    state: JobState
    files: tuple[str, ...]
    attempts: int
    next_attempt_at: float
    error: str
    output_dir: str
    seg_sop_uid: str


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One row of the ``deliveries`` table."""

    job_id: int
    destination: str
    state: DeliveryState
    attempts: int
    next_attempt_at: float
    error: str


def job_from_row(row: sqlite3.Row) -> Job:
    return Job(row["id"], row["key"], row["study_uid"], JobState(row["state"]),
               tuple(json.loads(row["files"])), row["attempts"], row["next_attempt_at"],
               row["error"], row["output_dir"], row["seg_sop_uid"])


def delivery_from_row(row: sqlite3.Row) -> Delivery:
    return Delivery(row["job_id"], row["destination"], DeliveryState(row["state"]), row["attempts"],
                    row["next_attempt_at"], row["error"])
