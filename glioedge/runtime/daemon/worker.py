"""One job, start to finish: segment in the child process → publish outputs atomically → record → deliver.

Failures never escape: bad input is quarantined, an environmental error (full or read-only outbox)
re-queues the job with a clear error and without spending an attempt (the finished result waits in
the child process, so inference does not run again), anything else (a back-end error, a crash of
the inference process) re-queues it with backoff until ``watch.max_attempts`` starts have been used
(then it is ``failed``). Any exception of a delivery is a failed send with backoff.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from glioedge.fileio import publish_dir
from glioedge.runtime.daemon.config import DaemonConfig
from glioedge.runtime.daemon.delivery import DeliveryError, Destination
from glioedge.runtime.daemon.health import Metrics
from glioedge.runtime.daemon.jobproc import JobProcess
from glioedge.runtime.daemon.jobs import Job, JobState, JobStore
from glioedge.runtime.daemon.names import safe_uid, study_folder
from glioedge.runtime.daemon.quarantine import quarantine
from glioedge.runtime.daemon.stranded import Stranded

logger = logging.getLogger(__name__)

TMP_DIR = "_tmp"


def clean_staging(outbox: Path) -> None:
    """Remove half-written outputs left by a crash (``<outbox>/_tmp``)."""
    shutil.rmtree(outbox / TMP_DIR, ignore_errors=True)


def study_relative(message: str, files: tuple[str, ...] | list[str]) -> str:
    """``message`` with the study's folder removed from the paths it names (folder names of
    viewer exports carry patient names; the operator finds the files relative to the study)."""
    if not files:
        return message
    try:
        base = os.path.commonpath([str(Path(f).parent) for f in files])
    except ValueError:
        return message
    return message.replace(base.rstrip("/") + "/", "") if base not in ("", "/") else message


class Worker:
    """Runs jobs one at a time and delivers their outputs.

    Args:
        config: Daemon configuration.
        store: This thread's job store connection.
        jobs: The inference child process (None for a delivery-only worker).
        metrics: Shared metrics.
        destinations: Configured destinations by name.
    """

    def __init__(self, config: DaemonConfig, store: JobStore, jobs: JobProcess | None, metrics: Metrics,
                 destinations: Mapping[str, Destination]) -> None:
        self.config = config
        self.store = store
        self.jobs = jobs
        self.metrics = metrics
        self.destinations = dict(destinations)
        self.outbox = Path(config.watch.outbox)
        #: Jobs left ``running`` by an unexpected exception, to put back in the queue.
        self.stranded = Stranded()

    def _retry_delay(self, attempts: int) -> float:
        w = self.config.watch
        return min(w.retry_max, w.retry_initial * 2 ** max(0, attempts - 1))

    def run_next(self) -> bool:
        """Claim and process the next due job; False when there was none.

        An unexpected exception after the claim (an SQLite error, a bug) never leaves the job
        ``running`` until a restart: it goes back to the queue as a failed attempt, now or, when
        the store itself fails, before the next claim (:mod:`.stranded`). ``OSError`` and SQLite
        errors are raised again for the loop to back off; others are logged.
        """
        self.stranded.release(self.store, self._retry_delay)
        job = self.store.claim(self.config.watch.max_attempts)
        if job is None:
            return False
        self.metrics.busy_since = time.time()
        self.metrics.busy_job = job.id
        self.metrics.busy_limit = self.config.watch.job_limit(len(job.files))
        try:
            self.process(job)
        except Exception as exc:
            self.stranded.add(job, exc)
            self.stranded.release(self.store, self._retry_delay)
            if isinstance(exc, (OSError, sqlite3.Error)):
                raise
        finally:
            self.metrics.busy_since = None
            self.metrics.busy_job = None
            self.metrics.busy_limit = None
        return True

    def process(self, job: Job) -> JobState:
        """Process one claimed (running) job; never raises for a bad study, a crash or a full disk.

        Returns:
            The job's state afterwards.
        """
        assert self.jobs is not None, "a delivery-only worker runs no job"
        log = {"event": "job", "job_id": job.id, "study_uid": job.study_uid, "attempt": job.attempts}
        logger.info("job started", extra=log)
        t0 = time.perf_counter()
        final = study_folder(self.outbox, job.study_uid, job.id)  # this version's own folder
        staging = self.outbox / TMP_DIR / f"{safe_uid(job.study_uid)}.{job.id}"
        logger.info("inference started", extra={**log, "stage": "inference", "pid": self.jobs.pid})
        try:
            reply = self.jobs.run({"op": "run", "job_id": job.id, "key": job.key,
                                   "files": list(job.files), "staging": str(staging)},
                                  timeout=self.config.watch.job_limit(len(job.files)))
        except Exception as exc:  # the inference process could not start or answered nonsense
            reply = {"status": "error", "kind": type(exc).__name__, "message": str(exc)}
            if self.jobs.stop.is_set():  # it was starting when the daemon was told to stop
                reply = {"status": "stopped", "message": f"interrupted by the stop ({exc})"}
        status = reply.get("status")
        for stage, seconds in dict(reply.get("timings") or {}).items():  # inference ran this time
            self.metrics.observe(stage, float(seconds))
        if status == "input_error":
            return self._quarantine(job, study_relative(str(reply.get("message")), job.files), log)
        if status == "write_error":
            message = (f"[{reply.get('code', '?')}] {reply.get('message', '')}")
            return self._outbox_error(job, int(reply.get("errno") or 0), message, log)
        if status == "stopped":  # the daemon is stopping: not the job's fault
            shutil.rmtree(staging, ignore_errors=True)
            self.store.requeue(job.id, str(reply.get("message")), 0.0, refund=True)
            logger.warning("job interrupted by the stop; re-queued", extra=log)
            return JobState.QUEUED
        if status == "timeout":
            shutil.rmtree(staging, ignore_errors=True)
            self.metrics.inc("job_timeouts")
        if status != "written":
            return self._failed_attempt(job, str(reply.get("kind", status)),
                                        study_relative(str(reply.get("message")), job.files), log)
        if reply.get("reused"):
            logger.info("outputs written from the result kept since an earlier attempt; inference "
                        "not run again", extra=log)
        t1 = time.perf_counter()
        try:
            publish_dir(staging, final)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            message = f"[{errno.errorcode.get(exc.errno or 0, '?')}] {exc.strerror or exc}"
            return self._outbox_error(job, exc.errno or 0, message, log)
        self.metrics.set_problem("outbox", None)
        self.metrics.observe("write", time.perf_counter() - t1)
        seg_uid = str(reply.get("seg_sop_uid", ""))
        if held := self._held_back(reply):  # the delivery policy keeps this verdict from the PACS
            reason = f"{held}; its outputs are in {final.name} for review"
            state = self._quarantine(job, reason, log)  # copies the inputs with the reason
            if state is JobState.QUARANTINED:
                self.store.outputs_held(job.id, str(final), seg_uid, reason)
            return state
        state = self.store.outputs_written(job.id, str(final), seg_uid, self.destinations)
        self.metrics.observe("job", time.perf_counter() - t0)
        logger.info("outputs written", extra={**log, "output": str(final), "seg_sop_uid": seg_uid})
        if state is JobState.SUPERSEDED:
            logger.warning("job superseded: a newer version of the study was published first; "
                           "nothing delivered", extra={**log, "seg_sop_uid": seg_uid})
            return state
        if not self.destinations:
            self._finished(job)
            return JobState.DONE
        return JobState.DELIVERING

    def _held_back(self, reply: dict[str, Any]) -> str:
        """Why the delivery policy (``[delivery] deliver``) holds this result back, or ``""``."""
        from glioedge.runtime.quality import delivers

        quality = dict(reply.get("quality") or {})
        policy = self.config.delivery.deliver
        if delivers(policy, quality.get("verdict")):
            return ""
        self.metrics.inc("held_back", verdict=str(quality.get("verdict")))
        return (f"quality {quality.get('summary') or quality.get('verdict')}: not delivered "
                f"(delivery.deliver = {policy!r})")

    def _failed_attempt(self, job: Job, kind: str, message: str, log: dict[str, Any]) -> JobState:
        delay = self._retry_delay(job.attempts)
        self.store.requeue(job.id, message, delay)
        self.metrics.inc("job_errors", kind=kind)
        logger.error("job failed; re-queued", extra={**log, "error": message, "kind": kind,
                                                     "retry_in_s": delay,
                                                     "attempts_left": self.config.watch.max_attempts
                                                     - job.attempts})
        return JobState.QUEUED

    def _outbox_error(self, job: Job, code: int, detail: str, log: dict[str, Any]) -> JobState:
        full = code in (errno.ENOSPC, errno.EDQUOT)
        what = "outbox is full" if full else "cannot write to the outbox"
        message = f"{what} ({self.outbox}): {detail}; the job stays queued and is retried"
        delay = self._retry_delay(job.attempts)
        self.store.requeue(job.id, message, delay, refund=True)
        self.metrics.inc("job_errors", kind="outbox_full" if full else "outbox_error")
        self.metrics.set_problem("outbox", message)
        logger.error("outputs not written; job re-queued", extra={**log, "error": message,
                                                                  "retry_in_s": delay})
        return JobState.QUEUED

    def _quarantine(self, job: Job, reason: str, log: dict[str, Any]) -> JobState:
        try:
            quarantine(self.config.watch.quarantine_dir, job.study_uid, job.files, reason, job_id=job.id,
                       inbox=self.config.watch.inbox, details={"job_id": job.id, "key": job.key})
        except OSError as exc:
            message = f"quarantine folder not writable: {exc}; the job stays queued"
            self.store.requeue(job.id, message, self._retry_delay(job.attempts), refund=True)
            self.metrics.set_problem("quarantine", message)
            logger.error("quarantine failed", extra={**log, "error": message})
            return JobState.QUEUED
        self.metrics.set_problem("quarantine", None)
        self.store.finish(job.id, JobState.QUARANTINED, reason)
        self.metrics.inc("quarantined")
        return JobState.QUARANTINED

    def _finished(self, job: Job) -> None:
        # keep_inputs = false: the inputs go on the next scan, when nothing needs them any more
        # (decided in glioedge.runtime.daemon.ownership, which also knows the studies arriving)
        self.metrics.inc("jobs_done")
        logger.info("job done", extra={"event": "job", "job_id": job.id, "study_uid": job.study_uid})

    def deliver_due(self, limit: int = 100) -> int:
        """Send every due pending delivery once (bounded by ``limit``).

        Returns:
            How many sends were attempted.
        """
        cfg = self.config.delivery
        sent = 0
        for delivery in self.store.due_deliveries()[:limit]:
            job = self.store.job(delivery.job_id)
            log = {"event": "delivery", "job_id": job.id, "study_uid": job.study_uid,
                   "destination": delivery.destination, "attempt": delivery.attempts + 1,
                   "seg_sop_uid": job.seg_sop_uid}
            destination = self.destinations.get(delivery.destination)
            t0 = time.perf_counter()
            try:
                if destination is None:
                    raise DeliveryError(f"{delivery.destination} is no longer configured")
                logger.info("delivery started", extra=log)
                destination.send(Path(job.output_dir))
            except Exception as exc:  # any exception of a send is a failed attempt, never a loop
                attempts = delivery.attempts + 1
                retry = cfg.backoff(attempts) if attempts < cfg.max_attempts and destination else None
                error = str(exc) if isinstance(exc, (DeliveryError, OSError)) else \
                    f"{delivery.destination}: {type(exc).__name__}: {exc}"
                state = self.store.delivery_result(job.id, delivery.destination, ok=False,
                                                   error=error, retry_in=retry)
                self.metrics.inc("delivery_failures", destination=delivery.destination)
                logger.warning("delivery failed", extra={**log, "error": error, "retry_in_s": retry,
                                                         "job_state": state.value})
            else:
                state = self.store.delivery_result(job.id, delivery.destination, ok=True)
                self.metrics.observe(f"deliver:{delivery.destination.split(':')[0]}",
                                     time.perf_counter() - t0)
                self.metrics.inc("deliveries", destination=delivery.destination)
                logger.info("delivered", extra={**log, "job_state": state.value})
                if state is JobState.DONE:
                    self._finished(job)
            sent += 1
        return sent
