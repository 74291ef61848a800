"""Jobs left ``running`` by an unexpected exception after their claim, until they are re-queued.

The worker claims a job (``running``, attempt counted) and then anything can fail: the store
(disk full, a locked or corrupt database), a bug. Such a job must not wait for a restart to run
again: it is re-queued at once as a failed attempt, or, when the store itself is what fails,
before the worker's next claim (so a store that recovers recovers its jobs too).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import Protocol

logger = logging.getLogger(__name__)


class _Store(Protocol):
    def release(self, job_id: int, error: str, delay: float) -> bool: ...


class _Job(Protocol):
    id: int
    attempts: int


class Stranded:
    """The worker's list of jobs to put back in the queue."""

    def __init__(self) -> None:
        self._jobs: dict[int, tuple[int, str]] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def add(self, job: _Job, exc: BaseException) -> None:
        """Remember ``job``, whose processing raised ``exc`` (logged here, with its traceback)."""
        error = f"unexpected error after the job started: {type(exc).__name__}: {exc}"
        logger.error("job interrupted by an unexpected error; it goes back to the queue",
                     exc_info=exc, extra={"event": "job", "job_id": job.id, "error": error})
        self._jobs[job.id] = (job.attempts, error)

    def release(self, store: _Store, delay: Callable[[int], float]) -> int:
        """Re-queue the remembered jobs that are still ``running`` (the attempt stays counted).

        Returns:
            How many were handed back to the store (a store that fails keeps them here).
        """
        done = 0
        for job_id, (attempts, error) in list(self._jobs.items()):
            try:
                store.release(job_id, error, delay(attempts))
            except sqlite3.Error as exc:
                logger.warning("cannot re-queue an interrupted job yet; trying again before the next "
                               "job", extra={"event": "job", "job_id": job_id, "error": str(exc)})
                break
            del self._jobs[job_id]
            done += 1
        return done
