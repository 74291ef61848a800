"""The daemon loop: scan the inbox → queue complete studies → run jobs → deliver, until stopped.

One daemon per state folder, outbox and inbox (an exclusive ``flock`` on each of the three
folders); inference runs in a child process
(:mod:`.jobproc`), one job at a time, deliveries in their own thread so that a PACS that is down
never holds up segmentation. SIGTERM (see :mod:`.commands`) sets the stop event: the running job
gets ``watch.stop_grace`` seconds to finish, then the inference child's process tree is killed and
the job re-queued uncharged; a ``kill -9`` loses nothing but the running job's progress, counts
that start, and the next start kills what the killed daemon left (:mod:`.procs`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from glioedge.errors import ConfigError, GlioedgeError, InputError
from glioedge.runtime.daemon import procs
from glioedge.runtime.daemon.config import DaemonConfig
from glioedge.runtime.daemon.delivery import destinations
from glioedge.runtime.daemon.health import HealthServer, Metrics
from glioedge.runtime.daemon.inbox import Inbox, PendingStudy, missing_series
from glioedge.runtime.daemon.inbox_cache import CACHE_NAME
from glioedge.runtime.daemon.jobproc import JobProcess
from glioedge.runtime.daemon.jobs import DB_NAME, JobState, JobStore
from glioedge.runtime.daemon.logging import register_private_folder
from glioedge.runtime.daemon.ownership import release_done_inputs
from glioedge.runtime.daemon.quarantine import quarantine
from glioedge.runtime.daemon.worker import Worker, clean_staging

logger = logging.getLogger(__name__)

__all__ = ["DB_NAME", "PROBLEM_COUNTERS", "Daemon"]
#: Counters that make ``--once`` exit with status 1.
PROBLEM_COUNTERS = ("quarantined", "job_errors", "delivery_failures", "incomplete_studies",
                    "jobs_failed")
#: ``--once`` gives up (status 2) after this many loop errors in a row (a full or broken state disk).
ONCE_MAX_LOOP_ERRORS = 3


class Daemon:
    """The ``glioedge watch`` service.

    Args:
        config: Validated configuration with inbox, outbox and bundle set.
        stop: Set it to stop the daemon (SIGTERM does).
    """

    def __init__(self, config: DaemonConfig, stop: threading.Event | None = None) -> None:
        config.require_folders()
        self.config = config
        self.stop = stop or threading.Event()
        self.metrics = Metrics()
        self.health: HealthServer | None = None
        self.required: tuple[str, ...] = ("flair", "t1ce")
        self.rules: Any = None
        self._checked: dict[str, str] = {}
        #: Job keys of the inbox's studies that the store knows (not looked up on every poll).
        self._known: set[str] = set()
        #: The inference child's ``ready`` message (bundle id, back-end) for the status page.
        self.ready: dict[str, Any] = {}
        #: Studies still arriving at the last scan (the status page's "queue").
        self.waiting = 0
        #: The status page's patient column, filled by the loop (``[status_page] show_patient``).
        self.patients: Any = None
        self._once = False
        #: ``--once``: quiet studies that lack a required series (key → reason), reported once.
        self.incomplete: dict[str, str] = {}

    # ---- set-up -----------------------------------------------------------------------------
    @staticmethod
    def _lock(folder: Path, what: str) -> int:
        """An exclusive ``flock`` on the folder itself (nothing is written into inbox or outbox).

        Raises:
            ConfigError: another daemon holds it.
        """
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            nested = " (or an inbox inside it)" if what == "inbox" else ""
            raise ConfigError(f"another glioedge daemon uses the {what} folder {folder}{nested} (it "
                              "holds its lock); one daemon per inbox, outbox and state folder, and "
                              "no inbox inside another: stop it or give this one other folders") from exc
        return fd

    @staticmethod
    def _lock_ancestors(inbox: Path) -> list[int]:
        """A shared ``flock`` on every folder above the inbox, held while the daemon runs: a daemon
        whose inbox contains this one cannot take its exclusive inbox lock, and this one cannot
        start inside another daemon's inbox (or outbox, or state folder).

        Raises:
            ConfigError: an enclosing folder is another daemon's.
        """
        fds: list[int] = []
        for folder in inbox.resolve().parents:
            try:
                fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                continue  # not readable: no daemon of ours can lock it either
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                for held in fds:
                    os.close(held)
                raise ConfigError(f"the inbox {inbox} lies inside {folder}, a folder another glioedge "
                                  "daemon uses (its inbox, outbox or state folder): both would process "
                                  "and send the same studies; give this one a folder of its own") from exc
            fds.append(fd)
        return fds

    def _rules(self) -> Any:
        if not self.config.model.rules:
            return None
        from glioedge.dicom_io import load_rules

        return load_rules(self.config.model.rules)

    def run(self, once: bool = False) -> int:
        """Serve until :attr:`stop` is set (or, with ``once``, until nothing ready is left).

        Returns:
            Exit status: 0; with ``once``, 1 when a job was quarantined, a job attempt or a
            delivery failed during the run.

        Raises:
            ConfigError: another daemon holds the state folder, outbox or inbox, or a rule file is
                invalid.
            ModelError: the bundle cannot be loaded.
            BackendError: the back-end cannot be opened.
        """
        w = self.config.watch
        outbox, state, inbox_dir = Path(w.outbox), w.state_dir, Path(w.inbox)
        for folder in (outbox, state, w.quarantine_dir, inbox_dir):
            folder.mkdir(parents=True, exist_ok=True)
        for form in {str(inbox_dir), str(inbox_dir.absolute()), str(inbox_dir.resolve())}:
            register_private_folder(form)
        locks: list[int] = []
        folders = {f.resolve(): (f, what) for f, what in
                   ((inbox_dir, "inbox"), (outbox, "outbox"), (state, "state"))}
        try:
            for folder, what in folders.values():
                locks.append(self._lock(folder, what))
            locks += self._lock_ancestors(inbox_dir)
            self.rules = self._rules()  # loaded once: the inference child gets these
        except ConfigError:
            for fd in locks:
                os.close(fd)
            raise
        self._once = once
        started = time.time()
        store = JobStore(state / DB_NAME)
        jobs = JobProcess(self.config, stop=self.stop, rules=self.rules)
        try:
            procs.sweep(state)  # a killed daemon's inference tree and temporary files
            recovered = store.recover(delay=w.retry_initial)
            clean_staging(outbox)
            logger.info("daemon starting", extra={"event": "start", "outbox": w.outbox,
                                                  "recovered_jobs": recovered, "once": once})
            self.metrics.starting = True  # /healthz "starting" while the model loads (a first
            if self.config.health.port or self.health is not None:  # TensorRT build: minutes)
                self._start_health(state)
            try:
                ready = jobs.start()
            except GlioedgeError:
                if self.stop.is_set():  # SIGTERM while the model was loading: a normal stop
                    return 0
                raise
            self.ready = dict(ready)
            self.required = tuple(ready.get("modalities") or self.required)
            dests = destinations(self.config.delivery)
            worker = Worker(self.config, store, jobs, self.metrics, dests)
            self.metrics.starting = False
            inbox = self.make_inbox(once)
            try:
                code = self._loop(store, worker, inbox, dests, once)
            finally:
                inbox.close()
                if self.health is not None:
                    self.health.stop()
            if code:
                return code
            if once:  # e.g. a job recovered from a killed run with its attempts used up
                failed = [j.id for j in store.jobs(JobState.FAILED) if store.times(j.id)[1] >= started]
                if failed:
                    self.metrics.inc("jobs_failed", len(failed))
            if once and any(self.metrics.total(c) for c in PROBLEM_COUNTERS):
                logger.warning("finished with problems", extra={
                    "event": "stop", **{c: self.metrics.total(c) for c in PROBLEM_COUNTERS}})
                return 1
            return code
        finally:
            if self.health is not None:  # also when the model failed to load
                self.health.stop()
            jobs.close()
            store.close()
            for fd in locks:
                os.close(fd)
            logger.info("daemon stopped", extra={"event": "stop"})

    def make_inbox(self, once: bool = False) -> Inbox:
        """The inbox scanner, with its digest cache in the state folder."""
        w = self.config.watch
        return Inbox(w.inbox, exclude=[Path(w.outbox), w.state_dir, w.quarantine_dir],
                     use_watchdog=w.watchdog and not once, cache=w.state_dir / CACHE_NAME,
                     settle=w.quiet_time, rescan=w.rescan_interval)

    def _start_health(self, state: Path) -> None:
        db = JobStore(state / DB_NAME, shared=True)
        lock = threading.Lock()

        def snapshot() -> tuple[dict[str, int], dict[tuple[str, str], int]]:
            with lock:  # one shared read connection, serialised across request threads
                return db.counts(), db.delivery_counts()

        h = self.config.health
        self.health = HealthServer(h.host, h.port, self.metrics, snapshot, pages=self._pages(db, lock),
                                   allowed_hosts=h.allowed_hosts, max_connections=h.max_connections)
        self.health.start()
        logger.info("health endpoint up", extra={"event": "health", "port": self.health.port})

    def _pages(self, db: JobStore, lock: threading.Lock) -> Any:
        """The status page (``/``) and QA images (``/qa/<job>.png``) on the health port."""
        from glioedge.runtime.daemon.operator import job_rows
        from glioedge.runtime.daemon.status_page import PatientColumn, qa_image, render_page

        options = self.config.status_page
        if options.show_patient:
            self.patients = PatientColumn()

        def pages(path: str, health: dict[str, Any]) -> tuple[int, str, bytes | str] | None:
            if path not in ("/", "/status") and not path.startswith("/qa/"):
                return None
            with lock:
                rows = job_rows(db, limit=options.jobs)
                counts = db.counts()
            if path.startswith("/qa/"):
                name = path[len("/qa/"):].removesuffix(".png")
                png = qa_image(rows, int(name)) if name.isdigit() and path.endswith(".png") else None
                return (200, "image/png", png) if png is not None else None
            info = {"bundle_id": self.ready.get("bundle_id"), "backend": self.ready.get("backend"),
                    "counts": counts, "waiting": self.waiting, "health": health["status"],
                    "problems": health["problems"], "now": time.time()}
            patient = self.patients.get if self.patients is not None else None
            return 200, "text/html; charset=utf-8", render_page(rows, info, refresh=options.refresh,
                                                               patient=patient)

        return pages

    # ---- loop -------------------------------------------------------------------------------
    def _loop(self, store: JobStore, worker: Worker, inbox: Inbox, dests: dict[str, Any],
              once: bool) -> int:
        deliverer: threading.Thread | None = None
        if dests and not once:
            deliverer = threading.Thread(target=self._deliver_forever, args=(worker,),
                                         name="glioedge-delivery", daemon=True)
            deliverer.start()
        errors = 0
        try:
            while not self.stop.is_set():
                self.metrics.tick()
                try:
                    waiting = self._scan(store, inbox)
                    self.waiting = waiting
                    self.refresh_patients(store)
                    while not self.stop.is_set() and worker.run_next():
                        self.metrics.tick()
                        self.refresh_patients(store)
                    errors = 0
                except (OSError, sqlite3.Error) as exc:  # e.g. the state disk is full: retry later
                    errors += 1
                    if once and errors >= ONCE_MAX_LOOP_ERRORS:
                        logger.error("giving up: the same kind of error keeps recurring", extra={
                            "event": "stop", "error": f"{type(exc).__name__}: {exc}",
                            "errors_in_a_row": errors})
                        return 2
                    logger.exception("daemon loop error; retrying", extra={"event": "loop",
                                                                           "error": str(exc)})
                    self.stop.wait(self.config.watch.retry_initial)
                    waiting = 1
                if once:
                    if dests:
                        worker.deliver_due()
                    if not waiting:
                        self._release_inputs(store, inbox, inbox.scan()[0])
                        return 0
                inbox.wait(min(self.config.watch.poll_interval, 0.2 if once else 3600.0))
        finally:
            self.stop.set()
            inbox.wake()
            if deliverer is not None:  # a send in flight is re-sent after a restart
                deliverer.join(timeout=min(self.config.delivery.timeout + 5,
                                           max(1.0, self.config.watch.stop_grace)))
        return 0

    def refresh_patients(self, store: JobStore) -> None:
        """Read the patient column of the listed jobs here, in the loop, not per page request."""
        if self.patients is not None:
            jobs = sorted(store.jobs(), key=lambda j: j.id, reverse=True)[: self.config.status_page.jobs]
            self.patients.update((j.id, j.files) for j in jobs)

    def _deliver_forever(self, worker: Worker) -> None:
        store = JobStore(worker.store.path)
        deliverer = Worker(self.config, store, None, self.metrics, worker.destinations)
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
            if key in self._known:  # a job exists (rows go only once their inputs are gone)
                continue
            if store.has_key(key):
                inbox.forget_headers(study.files)
                self._known.add(key)
                continue
            # this version of the study started with its first file newer than the last job of
            # the study: a study sent again waits its quiet time and max_wait afresh
            first = study.first_seen_since(store.last_created(study.study_uid))
            quiet = now - study.last_activity >= w.quiet_time
            overdue = now - first >= w.max_wait
            if not quiet and not overdue:
                waiting += 1
                continue
            if key not in self._checked:  # identify once per instance set, not on every poll
                try:
                    headers = inbox.headers(study.files)
                except InputError as exc:  # a file vanished or broke since the scan
                    self._checked[key] = str(exc)
                else:
                    self._checked[key] = missing_series(headers, self.required, self.rules)
            reason = self._checked[key]
            if reason and self._once and key not in self.incomplete:  # nobody waits for the rest
                self.incomplete[key] = reason
                self.metrics.inc("incomplete_studies")
                logger.warning("study incomplete: not processed", extra={
                    "event": "inbox", "study_uid": study.study_uid, "reason": reason})
            if reason and not overdue:
                logger.debug("study incomplete", extra={"event": "inbox", "study_uid": study.study_uid,
                                                        "reason": reason})
                continue  # complete later, or processed/quarantined at max_wait
            self._queue(store, study, key, reason, inbox.entries())
            inbox.forget_headers(study.files)
            self._checked.pop(key, None)
        current = {study.fingerprint(inbox.entries()) for study in studies}
        self._checked = {k: v for k, v in self._checked.items() if k in current}
        self._release_inputs(store, inbox, studies)
        self._known &= current
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

    def _release_inputs(self, store: JobStore, inbox: Inbox, studies: list[PendingStudy]) -> None:
        """``keep_inputs = false``: inputs of done versions go unless a job or a version still
        arriving needs them (:mod:`.ownership` decides)."""
        if self.config.watch.keep_inputs:
            return
        arriving = [f for s in studies if not store.has_key(s.fingerprint(inbox.entries()))
                    for f in s.files]
        release_done_inputs(store, arriving)

    def _queue(self, store: JobStore, study: PendingStudy, key: str, reason: str,
               entries: dict[str, Any]) -> None:
        # byte-identical copies of an instance (a resend into a second folder) go in once;
        # copies that differ are all passed on, for the reader to judge
        unique: dict[tuple[str, str], str] = {}
        for f in study.files:
            unique.setdefault((entries[f].sop_uid, entries[f].digest), f)
        files = sorted(unique.values())
        job_id = store.add_job(key, study.study_uid, files)
        if job_id is not None:
            extra = {"event": "queued", "job_id": job_id, "study_uid": study.study_uid,
                     "files": len(files), "identical_copies_skipped": len(study.files) - len(files)}
            if reason:
                extra["incomplete_after_max_wait"] = reason
            logger.info("study queued", extra=extra)
