"""Which inbox files a daemon job owns, and when they may be deleted: decided here only.

A job (one version of a study) lists the inbox files it was made from; several versions of a
study share files (version 2 is version 1 plus the slices that came late). A file may be deleted
(``keep_inputs = false`` after a job is done, or ``glioedge purge``) only when nothing still needs
it:

* no job that is queued, running or delivering lists it;
* no ``failed`` job lists it: a failed study keeps its inputs until it is retried to success,
  quarantined, or explicitly dropped (``glioedge purge --include-failed``);
* no study still arriving in the inbox (a version not yet queued) contains it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from glioedge.runtime.daemon.jobs import Job, JobState, JobStore

logger = logging.getLogger(__name__)

#: Jobs whose inputs are needed: they may still run (or be retried) and read them.
HOLDING = (JobState.QUEUED, JobState.RUNNING, JobState.DELIVERING, JobState.FAILED)


def held_files(store: JobStore, *, include_failed: bool = False, exclude: int | None = None) -> set[str]:
    """The inbox files some job still needs (``include_failed``: failed jobs let theirs go).

    Args:
        store: The job store.
        include_failed: Failed jobs are being dropped by the operator: their files are not held.
        exclude: A job whose own hold does not count (the one releasing its files).
    """
    states = [s for s in HOLDING if not (include_failed and s is JobState.FAILED)]
    return {f for state in states for job in store.jobs(state) if job.id != exclude for f in job.files}


def releasable(store: JobStore, job: Job, arriving: Iterable[str] = ()) -> list[str]:
    """The files of ``job`` that may be deleted now (see the module docstring)."""
    held = held_files(store, exclude=job.id) | set(arriving)
    return [f for f in job.files if f not in held]


def release_done_inputs(store: JobStore, arriving: Iterable[str] = ()) -> int:
    """``keep_inputs = false``: delete the inputs of done and superseded jobs that nothing else
    needs; a job's paths are forgotten once all of its files are gone (folder names may carry
    PHI). Called by the daemon's scan, which knows the studies still arriving.

    Returns:
        How many files were deleted.
    """
    held = held_files(store) | set(arriving)  # done and superseded jobs hold nothing
    deleted = 0
    for state in (JobState.DONE, JobState.SUPERSEDED):
        for job in store.jobs(state):
            if not job.files:
                continue
            free = [f for f in job.files if f not in held]
            for name in free:
                try:
                    Path(name).unlink()
                    deleted += 1
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    logger.warning("cannot delete an input", extra={"event": "inputs", "job_id": job.id,
                                                                   "error": str(exc)})
            if len(free) == len(job.files):
                store.forget_files(job.id)
    return deleted
