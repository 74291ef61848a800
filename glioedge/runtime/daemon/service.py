"""The daemon loop: scan the inbox → queue complete studies → run jobs → deliver, until stopped.

One process per state folder (an exclusive ``flock`` on ``<state>/daemon.lock``); inference runs
in the main loop, one job at a time, deliveries in their own thread so that a PACS that is down
never holds up segmentation. SIGTERM (see :mod:`.commands`) sets the stop event: the running job
finishes, then the daemon exits; a ``kill -9`` loses nothing but the running job's progress.
"""

from __future__ import annotations

import fcntl
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from glioedge.errors import ConfigError, InputError
from glioedge.runtime.daemon.config import DaemonConfig
from glioedge.runtime.daemon.delivery import destinations
from glioedge.runtime.daemon.health import HealthServer, Metrics
from glioedge.runtime.daemon.inbox import Inbox, PendingStudy, missing_series
from glioedge.runtime.daemon.jobs import JobState, JobStore
from glioedge.runtime.daemon.quarantine import quarantine
from glioedge.runtime.daemon.worker import SegmenterLike, Worker, clean_staging

logger = logging.getLogger(__name__)

DB_NAME = "jobs.sqlite"


def _default_segmenter(config: DaemonConfig) -> SegmenterLike:
    from glioedge.runtime.segmenter import Segmenter, SegmenterConfig

    return Segmenter.from_bundle(config.model.bundle, backend=config.model.backend,
                                 device=config.model.device or None,
                                 config=SegmenterConfig.from_dict(config.segmenter))


class Daemon:
    """The ``glioedge watch`` service.

    Args:
        config: Validated configuration with inbox, outbox and bundle set.
        segmenter_factory: Builds the segmenter (default: ``Segmenter.from_bundle`` from config).
        stop: Set it to stop the daemon (SIGTERM does).
    """

    def __init__(self, config: DaemonConfig,
                 segmenter_factory: Callable[[DaemonConfig], SegmenterLike] | None = None,
                 stop: threading.Event | None = None) -> None:
        config.require_folders()
        self.config = config
        self.stop = stop or threading.Event()
        self.metrics = Metrics()
        self._factory = segmenter_factory or _default_segmenter
        self.health: HealthServer | None = None
        self.required: tuple[str, ...] = ("flair", "t1ce")
        self._checked: dict[str, str] = {}

    # ---- set-up -----------------------------------------------------------------------------
    def _lock(self, state: Path) -> Any:
        handle = (state / "daemon.lock").open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            raise ConfigError(f"another glioedge daemon uses the state folder {state}; "
                              "give each daemon its own --state") from exc
        return handle

    def _rules(self) -> Any:
        if not self.config.model.rules:
            return None
        from glioedge.dicom_io import load_rules

        return load_rules(self.config.model.rules)

    def run(self, once: bool = False) -> int:
        """Serve until :attr:`stop` is set (or, with ``once``, until nothing ready is left).

        Returns:
            Exit status 0.

        Raises:
            ConfigError: another daemon holds the state folder, or a rule file is invalid.
            ModelError: the bundle cannot be loaded.
            BackendError: the back-end cannot be opened.
        """
        w = self.config.watch
        outbox, state = Path(w.outbox), w.state_dir
        for folder in (outbox, state, w.quarantine_dir, Path(w.inbox)):
            folder.mkdir(parents=True, exist_ok=True)
        lock = self._lock(state)
        store = JobStore(state / DB_NAME)
        try:
            recovered = store.recover()
            clean_staging(outbox)
            logger.info("daemon starting", extra={"event": "start", "inbox": w.inbox,
                                                  "outbox": w.outbox, "recovered_jobs": recovered,
                                                  "once": once})
            rules = self._rules()
            segmenter = self._factory(self.config)
            manifest = getattr(getattr(segmenter, "bundle", None), "manifest", None)
            self.required = tuple(getattr(manifest, "modalities", self.required))
            dests = destinations(self.config.delivery)
            worker = Worker(self.config, store, segmenter, self.metrics, dests, rules)
            if self.config.health.port or self.health is not None:
                self._start_health(state)
            inbox = Inbox(w.inbox, exclude=[outbox, state, w.quarantine_dir],
                          use_watchdog=w.watchdog and not once)
            try:
                return self._loop(store, worker, inbox, dests, once)
            finally:
                inbox.close()
                if self.health is not None:
                    self.health.stop()
                close = getattr(segmenter, "close", None)
                if callable(close):
                    close()
        finally:
            store.close()
            lock.close()
            logger.info("daemon stopped", extra={"event": "stop"})

    def _start_health(self, state: Path) -> None:
        db = JobStore(state / DB_NAME, shared=True)
        lock = threading.Lock()

        def snapshot() -> tuple[dict[str, int], dict[tuple[str, str], int]]:
            with lock:  # one shared read connection, serialised across request threads
                return db.counts(), db.delivery_counts()

        self.health = HealthServer(self.config.health.host, self.config.health.port, self.metrics,
                                   snapshot)
        self.health.start()
        logger.info("health endpoint up", extra={"event": "health", "port": self.health.port})

    # ---- loop -------------------------------------------------------------------------------
    def _loop(self, store: JobStore, worker: Worker, inbox: Inbox, dests: dict[str, Any],
              once: bool) -> int:
        deliverer: threading.Thread | None = None
        if dests and not once:
            deliverer = threading.Thread(target=self._deliver_forever, args=(worker,),
                                         name="glioedge-delivery", daemon=True)
            deliverer.start()
        try:
            while not self.stop.is_set():
                self.metrics.tick()
                try:
                    waiting = self._scan(store, inbox)
                    while not self.stop.is_set() and worker.run_next():
                        self.metrics.tick()
                except (OSError, sqlite3.Error) as exc:  # e.g. the state disk is full: retry later
                    logger.exception("daemon loop error; retrying", extra={"event": "loop",
                                                                           "error": str(exc)})
                    self.stop.wait(self.config.watch.retry_initial)
                    waiting = 1
                if once:
                    if dests:
                        worker.deliver_due()
                    if not waiting:
                        return 0
                inbox.wait(min(self.config.watch.poll_interval, 0.2 if once else 3600.0))
        finally:
            self.stop.set()
            inbox.wake()
            if deliverer is not None:
                deliverer.join(timeout=self.config.delivery.timeout + 5)
        return 0

    def _deliver_forever(self, worker: Worker) -> None:
        store = JobStore(worker.store.path)
        deliverer = Worker(self.config, store, worker.segmenter, self.metrics, worker.destinations)
        try:
            while not self.stop.is_set():
                try:
                    sent = deliverer.deliver_due()
                except Exception:  # never let the delivery thread die silently
                    logger.exception("delivery loop error", extra={"event": "delivery"})
                    sent = 0
                if not sent:
                    self.stop.wait(min(1.0, self.config.watch.poll_interval))
        finally:
            store.close()

    def _scan(self, store: JobStore, inbox: Inbox) -> int:
        """Queue complete studies, quarantine broken files; return how many studies still wait."""
        w = self.config.watch
        now = time.time()
        studies, broken = inbox.scan(now)
        waiting = 0
        for study in studies:
            key = study.fingerprint(inbox.entries())
            if store.has_key(key):
                inbox.forget_headers(study.files)
                continue
            quiet = now - study.last_activity >= w.quiet_time
            overdue = now - study.first_seen >= w.max_wait
            if not quiet and not overdue:
                waiting += 1
                continue
            if key not in self._checked:  # identify once per instance set, not on every poll
                try:
                    headers = inbox.headers(study.files)
                except InputError as exc:  # a file vanished or broke since the scan
                    self._checked[key] = str(exc)
                else:
                    self._checked[key] = missing_series(headers, self.required)
            reason = self._checked[key]
            if reason and not overdue:
                logger.debug("study incomplete", extra={"event": "inbox", "study_uid": study.study_uid,
                                                        "reason": reason})
                continue  # complete later, or processed/quarantined at max_wait
            self._queue(store, study, key, reason)
            inbox.forget_headers(study.files)
            self._checked.pop(key, None)
        for bad in broken:
            if now - inbox.activity(bad.path) < w.quiet_time:
                waiting += 1
                continue
            if store.has_key(bad.key):
                continue
            reason = f"unreadable DICOM file: {bad.error}"
            try:
                quarantine(w.quarantine_dir, bad.key.replace(":", "_"), [bad.path], reason, inbox=w.inbox)
            except OSError as exc:
                logger.error("cannot quarantine file", extra={"event": "quarantine", "error": str(exc)})
                continue
            store.add_closed_job(bad.key, "", [bad.path], JobState.QUARANTINED, reason)
            self.metrics.inc("quarantined")
        return waiting

    def _queue(self, store: JobStore, study: PendingStudy, key: str, reason: str) -> None:
        job_id = store.add_job(key, study.study_uid, study.files)
        if job_id is not None:
            extra = {"event": "queued", "job_id": job_id, "study_uid": study.study_uid,
                     "files": len(study.files)}
            if reason:
                extra["incomplete_after_max_wait"] = reason
            logger.info("study queued", extra=extra)
