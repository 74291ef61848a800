"""One job, start to finish: read the study → segment → write outputs atomically → record → deliver.

Failures never escape: bad input is quarantined, an environmental error (full or read-only outbox)
re-queues the job with a clear error and without spending an attempt, anything else re-queues it
with backoff until ``watch.max_attempts`` starts have been used (then it is ``failed``).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import pydicom
from pydicom.dataset import Dataset

from glioedge.errors import InputError
from glioedge.runtime.daemon.config import DaemonConfig
from glioedge.runtime.daemon.delivery import DeliveryError, Destination, output_folder
from glioedge.runtime.daemon.health import Metrics
from glioedge.runtime.daemon.jobs import Job, JobState, JobStore
from glioedge.runtime.daemon.names import safe_uid
from glioedge.runtime.daemon.quarantine import quarantine

logger = logging.getLogger(__name__)

TMP_DIR = "_tmp"


class SegmenterLike(Protocol):
    """What the worker needs of :class:`glioedge.runtime.Segmenter`."""

    @property
    def bundle_id(self) -> str:
        """The model bundle's id."""

    def segment_study(self, source: Sequence[Dataset], *, rules: Any = None) -> Any:
        """Segment one study; raises InputError for bad input."""


def clean_staging(outbox: Path) -> None:
    """Remove half-written outputs left by a crash (``<outbox>/_tmp``)."""
    shutil.rmtree(outbox / TMP_DIR, ignore_errors=True)


def read_study(files: Sequence[str]) -> list[Dataset]:
    """Read a job's files completely (pixel data included).

    Raises:
        InputError: a file vanished or cannot be read, naming it.
    """
    datasets = []
    for f in files:
        try:
            datasets.append(pydicom.dcmread(f))
        except FileNotFoundError as exc:
            raise InputError(f"{f}: input file disappeared before processing") from exc
        except Exception as exc:  # any reader failure: the file is bad, name it
            raise InputError(f"{f}: cannot be read ({type(exc).__name__}: {exc})") from exc
    return datasets


def _publish(staging: Path, final: Path) -> None:
    """Swap ``staging`` into ``final`` (replacing a previous run's folder) with renames only."""
    if final.exists():
        trash = staging.with_name(staging.name + ".old")
        shutil.rmtree(trash, ignore_errors=True)
        final.rename(trash)
        staging.rename(final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        staging.rename(final)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Worker:
    """Runs jobs one at a time and delivers their outputs.

    Args:
        config: Daemon configuration.
        store: This thread's job store connection.
        segmenter: A loaded segmenter.
        metrics: Shared metrics.
        destinations: Configured destinations by name.
        rules: Modality rules passed to ``segment_study``.
    """

    def __init__(self, config: DaemonConfig, store: JobStore, segmenter: SegmenterLike, metrics: Metrics,
                 destinations: Mapping[str, Destination], rules: Any = None) -> None:
        self.config = config
        self.store = store
        self.segmenter = segmenter
        self.metrics = metrics
        self.destinations = dict(destinations)
        self.rules = rules
        self.outbox = Path(config.watch.outbox)

    def _retry_delay(self, attempts: int) -> float:
        w = self.config.watch
        return min(w.retry_max, w.retry_initial * 2 ** max(0, attempts - 1))

    def run_next(self) -> bool:
        """Claim and process the next due job; False when there was none."""
        job = self.store.claim(self.config.watch.max_attempts)
        if job is None:
            return False
        self.metrics.busy_since = time.time()
        try:
            self.process(job)
        finally:
            self.metrics.busy_since = None
        return True

    def process(self, job: Job) -> JobState:
        """Process one claimed (running) job; never raises for a bad study or a full disk.

        Returns:
            The job's state afterwards.
        """
        log = {"event": "job", "job_id": job.id, "study_uid": job.study_uid, "attempt": job.attempts}
        logger.info("job started", extra=log)
        t0 = time.perf_counter()
        try:
            datasets = read_study(job.files)
            logger.info("inference started", extra={**log, "stage": "inference"})
            result = self.segmenter.segment_study(datasets, rules=self.rules)
        except InputError as exc:
            return self._quarantine(job, str(exc), log)
        except Exception as exc:  # a handler's exception is a logged failure, never a crash
            delay = self._retry_delay(job.attempts)
            self.store.requeue(job.id, f"{type(exc).__name__}: {exc}", delay)
            self.metrics.inc("job_errors", kind=type(exc).__name__)
            logger.exception("job failed; re-queued", extra={**log, "retry_in_s": delay})
            return JobState.QUEUED
        for stage, seconds in getattr(result, "timings", {}).items():
            self.metrics.observe(stage, float(seconds))
        final = output_folder(self.outbox, job.study_uid)
        staging = self.outbox / TMP_DIR / f"{safe_uid(job.study_uid)}.{job.id}"
        t1 = time.perf_counter()
        try:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            result.write(staging)
            _publish(staging, final)
            _fsync_dir(self.outbox)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            what = "outbox is full" if full else "cannot write to the outbox"
            message = (f"{what} ({self.outbox}): [{errno.errorcode.get(exc.errno or 0, '?')}] "
                       f"{exc.strerror or exc}; the job stays queued and is retried")
            delay = self._retry_delay(job.attempts)
            self.store.requeue(job.id, message, delay, refund=True)
            self.metrics.inc("job_errors", kind="outbox_full" if full else "outbox_error")
            logger.error("outputs not written; job re-queued", extra={**log, "error": message,
                                                                      "retry_in_s": delay})
            return JobState.QUEUED
        self.metrics.observe("write", time.perf_counter() - t1)
        seg_uid = str(result.seg.SOPInstanceUID) if getattr(result, "seg", None) is not None else ""
        self.store.outputs_written(job.id, str(final), seg_uid, self.destinations)
        self.metrics.observe("job", time.perf_counter() - t0)
        logger.info("outputs written", extra={**log, "output": str(final), "seg_sop_uid": seg_uid})
        if not self.destinations:
            self._finished(job)
            return JobState.DONE
        return JobState.DELIVERING

    def _quarantine(self, job: Job, reason: str, log: dict[str, Any]) -> JobState:
        try:
            quarantine(self.config.watch.quarantine_dir, job.study_uid, job.files, reason,
                       inbox=self.config.watch.inbox, details={"job_id": job.id, "key": job.key})
        except OSError as exc:
            message = f"quarantine folder not writable: {exc}; the job stays queued"
            self.store.requeue(job.id, message, self._retry_delay(job.attempts), refund=True)
            logger.error("quarantine failed", extra={**log, "error": message})
            return JobState.QUEUED
        self.store.finish(job.id, JobState.QUARANTINED, reason)
        self.metrics.inc("quarantined")
        return JobState.QUARANTINED

    def _finished(self, job: Job) -> None:
        self.metrics.inc("jobs_done")
        logger.info("job done", extra={"event": "job", "job_id": job.id, "study_uid": job.study_uid})
        if not self.config.watch.keep_inputs:
            for f in job.files:
                Path(f).unlink(missing_ok=True)

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
            except (DeliveryError, OSError) as exc:
                attempts = delivery.attempts + 1
                retry = cfg.backoff(attempts) if attempts < cfg.max_attempts and destination else None
                state = self.store.delivery_result(job.id, delivery.destination, ok=False,
                                                   error=str(exc), retry_in=retry)
                self.metrics.inc("delivery_failures", destination=delivery.destination)
                logger.warning("delivery failed", extra={**log, "error": str(exc), "retry_in_s": retry,
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
