"""Command-line entry points: ``glioedge watch``, ``receive``, ``jobs``, ``retry`` and ``purge``.

``glioedge.cli`` registers them with :func:`add_watch_parser` and :func:`add_receive_parser`;
``python -m glioedge.runtime.daemon {watch,receive} ...`` works on its own too. Command-line
options override the ``--config`` TOML file, which overrides the defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from glioedge.errors import GlioedgeError, exit_code, exit_status
from glioedge.runtime.daemon.config import DaemonConfig, load_config


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
    return stop


def add_watch_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``watch``: the folder daemon."""
    p = subparsers.add_parser(
        "watch", help="watch an inbox folder, segment complete studies, deliver SEGs",
        description="Watch INBOX for DICOM studies; when a study is complete (required series "
        "present and quiet for --quiet-time seconds) segment it, write seg.dcm/report.json to "
        "OUTBOX/<study uid>/ and deliver to the configured PACS. Jobs survive restarts.")
    p.add_argument("inbox", nargs="?", type=Path, help="inbox folder (or [watch] inbox)")
    p.add_argument("--bundle", type=Path, help="model bundle folder (or [model] bundle)")
    p.add_argument("--out", type=Path, help="outbox folder (or [watch] outbox)")
    p.add_argument("--config", type=Path, help="TOML configuration file (docs/daemon.md)")
    p.add_argument("--pacs-cstore", action="append", metavar="AET@HOST:PORT",
                   help="deliver by DICOM C-STORE (repeatable; replaces [delivery] cstore)")
    p.add_argument("--pacs-stowrs", action="append", metavar="URL",
                   help="deliver by DICOMweb STOW-RS (repeatable; replaces [delivery] stowrs)")
    p.add_argument("--copy-to", action="append", metavar="DIR",
                   help="also copy outputs to this folder (repeatable; replaces [delivery] folders)")
    p.add_argument("--quiet-time", type=float, help="seconds without new files before a study is "
                   "complete (default 30)")
    p.add_argument("--max-wait", type=float, help="seconds after which an incomplete study is "
                   "processed or quarantined (default 1800)")
    p.add_argument("--poll-interval", type=float, help="seconds between inbox rescans (default 2)")
    p.add_argument("--quarantine", type=Path, help="quarantine folder (default OUTBOX/_quarantine)")
    p.add_argument("--state", type=Path, help="job-store folder (default OUTBOX/_state)")
    p.add_argument("--backend", help="auto, tensorrt, onnxruntime, torch (default auto)")
    p.add_argument("--device", help="device for the back-end, e.g. cuda:0")
    p.add_argument("--health-port", type=int, help="serve /healthz and /metrics on this port")
    p.add_argument("--log-format", choices=("json", "text"), help="log format (default json)")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING (default INFO)")
    p.add_argument("--once", action="store_true",
                   help="process what is complete, try pending deliveries once, then exit (status 1 "
                   "when a job was quarantined or an attempt or a delivery failed)")
    p.add_argument("--status", action="store_true",
                   help="print the job store (counts and unfinished jobs) as JSON and exit")
    p.set_defaults(func=run_watch)
    return p


def add_receive_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``receive``: the DICOM Storage SCP writing into the inbox."""
    p = subparsers.add_parser(
        "receive", help="DICOM Storage SCP: write received instances into the inbox",
        description="Accept C-STORE from a scanner or PACS and write each instance to "
        "INBOX/<study uid>/<series uid>/<sop uid>.dcm for 'glioedge watch'.")
    p.add_argument("--inbox", type=Path, help="inbox folder (or [receive] inbox / [watch] inbox)")
    p.add_argument("--aet", help="our AE title (default GLIOEDGE)")
    p.add_argument("--port", type=int, help="TCP port (default 11112)")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 for the network)")
    p.add_argument("--config", type=Path, help="TOML configuration file")
    p.add_argument("--allowed-aet", action="append", metavar="AET",
                   help="accept only this calling AE title (repeatable; needed off loopback "
                   "unless --allowed-peer)")
    p.add_argument("--allowed-peer", action="append", metavar="ADDR",
                   help="accept connections only from this address or network (repeatable)")
    p.add_argument("--min-free-mb", type=float,
                   help="refuse instances (0xA700) below this free space in MiB (default 512)")
    p.add_argument("--tls-cert", type=Path, help="PEM certificate: accept DICOM over TLS only")
    p.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    p.add_argument("--tls-ca", type=Path, help="PEM CA: require client certificates it signed")
    p.add_argument("--log-format", choices=("json", "text"))
    p.add_argument("--log-level")
    p.set_defaults(func=run_receive)
    return p


def _add_store_options(p: argparse.ArgumentParser, folders: bool = False) -> None:
    p.add_argument("--config", type=Path, help="the daemon's TOML configuration file")
    p.add_argument("--out", type=Path, help="the daemon's outbox (or [watch] outbox)")
    p.add_argument("--state", type=Path, help="the daemon's state folder (default OUTBOX/_state)")
    if folders:
        p.add_argument("--inbox", type=Path, help="the daemon's inbox (or [watch] inbox)")
        p.add_argument("--quarantine", type=Path, help="quarantine folder (default OUTBOX/_quarantine)")


def add_operator_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``jobs``, ``retry`` and ``purge``: the operator's commands on the daemon's store."""
    p = subparsers.add_parser(
        "jobs", help="list the daemon's jobs (study UID, state, attempts, last error, timings)",
        description="List the daemon's jobs, newest first. Studies are shown by UID, never by "
        "patient name or ID.")
    _add_store_options(p)
    p.add_argument("--state-is", dest="state_filter", choices=[s.value for s in _job_states()],
                   help="only jobs in this state")
    p.add_argument("--limit", type=int, default=50, help="at most this many jobs (default 50; 0: all)")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.add_argument("--show-paths", action="store_true",
                   help="show input paths in errors as they are (default: a stable hashed form; "
                   "inbox folder names may carry patient names)")
    p.set_defaults(func=run_jobs)
    p = subparsers.add_parser(
        "retry", help="run a failed or quarantined job again",
        description="Queue a failed or quarantined job again with its attempts reset (a job "
        "whose delivery failed is delivered again). Works while the daemon runs.")
    p.add_argument("job", type=int, help="the job's ID (see 'glioedge jobs')")
    _add_store_options(p)
    p.set_defaults(func=run_retry)
    p = subparsers.add_parser(
        "purge", help="remove inputs, outputs, quarantine and job rows older than an age",
        description="Remove what is older than --older-than (or [retention] older_than): a "
        "processed study's input files, outbox and quarantine folders, closed job rows. Never "
        "anything of a job in flight, never a study that was not processed.")
    _add_store_options(p, folders=True)
    p.add_argument("--older-than", metavar="AGE", help="e.g. 30d, 12h, 90m (a bare number: days)")
    p.add_argument("--dry-run", action="store_true", help="count what would go; remove nothing")
    p.add_argument("--include-failed", action="store_true",
                   help="also drop failed jobs older than the limit (their inputs, folders and "
                   "rows); without it a failed job keeps everything until it is retried")
    p.set_defaults(func=run_purge)


def _job_states() -> list[Any]:
    from glioedge.runtime.daemon.jobs import JobState

    return list(JobState)


def _store_config(args: argparse.Namespace) -> DaemonConfig:
    text = lambda v: None if v is None else str(v)  # noqa: E731
    return load_config(args.config, {
        "watch.outbox": text(args.out), "watch.state": text(args.state),
        "watch.inbox": text(getattr(args, "inbox", None)),
        "watch.quarantine": text(getattr(args, "quarantine", None)),
    })


def run_jobs(args: argparse.Namespace) -> int:
    """Print the job table.

    Raises:
        ConfigError: no job store at the configured state folder.
    """
    from glioedge.runtime.daemon.logging import register_private_folder
    from glioedge.runtime.daemon.operator import format_table, job_rows, open_store

    config = _store_config(args)
    show_paths = bool(getattr(args, "show_paths", False))
    if config.watch.inbox and not show_paths:
        register_private_folder(str(Path(config.watch.inbox).resolve()))
        register_private_folder(config.watch.inbox)
    if args.limit < 0:
        from glioedge.errors import ConfigError

        raise ConfigError(f"--limit {args.limit}: expected 0 (all) or a positive number")
    store = open_store(config)
    try:
        rows = job_rows(store, limit=args.limit or None, state=args.state_filter, show_paths=show_paths,
                        inbox=config.watch.inbox or None)
    finally:
        store.close()
    if args.json:
        json.dump([r.as_dict() for r in rows], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_table(rows))
    return 0


def run_retry(args: argparse.Namespace) -> int:
    """Retry one job.

    Raises:
        ConfigError: no store, no such job, or a job that is not failed or quarantined.
    """
    from glioedge.runtime.daemon.operator import open_store, retry

    store = open_store(_store_config(args))
    try:
        state = retry(store, args.job)
    finally:
        store.close()
    note = (" (a newer version of the study was published: it stays the current one; see "
            "'glioedge jobs')" if state.value == "superseded" else "")
    sys.stdout.write(f"job {args.job}: {state.value}{note}\n")
    return 0


def run_purge(args: argparse.Namespace) -> int:
    """Purge what is older than the limit.

    Raises:
        ConfigError: no age given (neither --older-than nor [retention] older_than), a bad age,
            or no job store.
    """
    from glioedge.errors import ConfigError
    from glioedge.runtime.daemon.operator import parse_age, purge

    config = _store_config(args)
    age = args.older_than or config.retention.older_than
    if not age:
        raise ConfigError("purge: give --older-than (e.g. 30d) or [retention] older_than in the config")
    include_failed = bool(getattr(args, "include_failed", False))
    report = purge(config, parse_age(age, "--older-than" if args.older_than else
                                     "retention.older_than"), dry_run=args.dry_run,
                   include_failed=include_failed)
    note = (f"--include-failed: {report.dropped_failed_jobs} failed job(s) dropped with their inputs"
            if include_failed else f"{report.kept_failed_jobs} failed job(s) kept with their inputs "
            "(glioedge retry JOB, or purge --include-failed to drop them)")
    json.dump({"dry_run": args.dry_run, "older_than": age, "include_failed": include_failed,
               **dataclasses.asdict(report), "note": note}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def watch_config(args: argparse.Namespace) -> DaemonConfig:
    """The configuration of ``watch``: file, then command line.

    Raises:
        ConfigError: an invalid file or value.
    """
    text = lambda v: None if v is None else str(v)  # noqa: E731
    listing = lambda v: None if v is None else list(v)  # noqa: E731
    return load_config(args.config, {
        "watch.inbox": text(args.inbox), "watch.outbox": text(args.out),
        "watch.quarantine": text(args.quarantine), "watch.state": text(args.state),
        "watch.quiet_time": args.quiet_time, "watch.max_wait": args.max_wait,
        "watch.poll_interval": args.poll_interval,
        "model.bundle": text(args.bundle), "model.backend": args.backend, "model.device": args.device,
        "delivery.cstore": listing(args.pacs_cstore), "delivery.stowrs": listing(args.pacs_stowrs),
        "delivery.folders": listing(args.copy_to),
        "health.port": args.health_port, "log.format": args.log_format, "log.level": args.log_level,
    })


def run_watch(args: argparse.Namespace) -> int:
    """Run the folder daemon (or print its store with ``--status``).

    Raises:
        GlioedgeError: configuration, bundle or back-end problems (before serving starts).
    """
    from glioedge.runtime.daemon.logging import configure

    configure("INFO", args.log_format or "json")  # configuration errors are log lines too
    config = watch_config(args)
    configure(config.log.level, config.log.format)
    if args.status:
        from glioedge.runtime.daemon.jobs import JobStore
        from glioedge.runtime.daemon.service import DB_NAME

        store = JobStore(config.watch.state_dir / DB_NAME)
        try:
            dump = store.dump()
            unfinished = [j for j in dump["jobs"] if j["state"] != "done"]
            from glioedge.runtime.daemon.logging import hide_paths

            for j in unfinished:  # input paths (inbox folder names) in a stable hashed form
                j["error"] = hide_paths(str(j.get("error", "")), j.pop("files", None) or ())
            json.dump({"counts": store.counts(), "unfinished": unfinished}, sys.stdout, indent=2,
                      default=str)
            sys.stdout.write("\n")
        finally:
            store.close()
        return 0
    from glioedge.runtime.daemon.service import Daemon

    return Daemon(config, stop=_stop_on_signals()).run(once=args.once)


def run_receive(args: argparse.Namespace) -> int:
    """Run the Storage SCP until SIGTERM.

    Raises:
        ConfigError: no inbox given, or an invalid value.
    """
    from glioedge.errors import ConfigError
    from glioedge.runtime.daemon.logging import configure
    from glioedge.runtime.daemon.receiver import Receiver

    configure("INFO", args.log_format or "json")  # configuration errors are log lines too
    config = load_config(args.config, {
        "receive.inbox": None if args.inbox is None else str(args.inbox), "receive.aet": args.aet,
        "receive.port": args.port, "receive.host": args.host,
        "receive.tls_cert": None if args.tls_cert is None else str(args.tls_cert),
        "receive.tls_key": None if args.tls_key is None else str(args.tls_key),
        "receive.tls_ca": None if args.tls_ca is None else str(args.tls_ca),
        "receive.allowed_calling_aets": args.allowed_aet, "receive.allowed_peers": args.allowed_peer,
        "receive.min_free_mb": args.min_free_mb,
        "log.format": args.log_format, "log.level": args.log_level,
    })
    configure(config.log.level, config.log.format)
    inbox = config.receive.inbox or config.watch.inbox
    if not inbox:
        raise ConfigError("receive: no inbox; give --inbox or [receive] inbox in the config file")
    return Receiver(config.receive, inbox).serve(_stop_on_signals())


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m glioedge.runtime.daemon {watch,receive,jobs,retry,purge} ...``."""
    parser = argparse.ArgumentParser(prog="glioedge")
    sub = parser.add_subparsers(dest="command", required=True)
    add_watch_parser(sub)
    add_receive_parser(sub)
    add_operator_parsers(sub)
    args = parser.parse_args(argv)
    try:
        return exit_status(args.func(args))
    except (GlioedgeError, OSError) as exc:  # the exit codes of ``glioedge``: one mapping
        logging.getLogger("glioedge.daemon").error("glioedge %s: %s", args.command, exc,
                                                   extra={"event": "error"})
        return exit_code(exc)
