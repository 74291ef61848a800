"""HTTP health endpoint and Prometheus metrics (text exposition format 0.0.4, by ``prometheus_client``).

``GET /healthz`` → 200 ``{"status": "ok", ...}`` while the daemon loop ticks and can do its work,
503 ``"stalled"`` when the loop has stalled, 503 ``"degraded"`` (with ``problems``) when it runs
but cannot write results (full or unwritable outbox);
``GET /metrics`` → jobs by state, deliveries by destination and state, stage latency
histograms, counters, and GPU memory when ``nvidia-smi`` answers. :class:`Metrics` keeps the
numbers; at each request a custom collector hands them to ``prometheus_client`` in a registry of
its own (never the process-wide default registry, so two daemons or tests in one process do not
collide), which writes the exposition text (types, escaping, format).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from glioedge._optional import require

logger = logging.getLogger(__name__)

#: Histogram bucket bounds in seconds (a tiny CPU model to a full-size case on 2 cores).
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
#: ``/metrics``' content type: the text format ``prometheus_client.generate_latest`` writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: HELP texts of the counters ``glioedge_<name>_total`` (docs/daemon.md, "Health and metrics").
COUNTER_HELP = {
    "jobs_done": "Jobs finished and published.",
    "jobs_failed": "Jobs that used up their attempts (--once).",
    "quarantined": "Studies quarantined.",
    "held_back": "Results kept from delivery by the quality policy.",
    "incomplete_studies": "Studies whose files stopped arriving without a required series.",
    "job_errors": "Failed job attempts by kind.",
    "job_timeouts": "Jobs killed at their time limit.",
    "deliveries": "Objects a destination acknowledged.",
    "delivery_failures": "Failed delivery attempts.",
}


class Metrics:
    """Thread-safe counters and stage-latency histograms kept in memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hist: dict[str, list[float]] = {}
        self._sum: dict[str, float] = {}
        self._count: dict[str, int] = {}
        self._counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        #: True while the daemon loads its model (``/healthz``: 503 "starting").
        self.starting = False
        self.started = time.time()
        self.last_tick = time.time()
        #: When the job in progress started (None when idle): a long inference is not a stall.
        self.busy_since: float | None = None
        #: The id and time limit (s) of the job in progress: past its limit, it is stalled.
        self.busy_job: int | None = None
        self.busy_limit: float | None = None
        #: What keeps the daemon from doing its work right now (e.g. ``{"outbox": "full ..."}``).
        self.problems: dict[str, str] = {}

    def set_problem(self, name: str, message: str | None) -> None:
        """Record (``message``) or clear (None) a condition that makes ``/healthz`` degraded."""
        with self._lock:
            if message is None:
                self.problems.pop(name, None)
            else:
                self.problems[name] = message

    def total(self, name: str) -> float:
        """Sum of counter ``name`` over all its labels."""
        with self._lock:
            return sum(v for (n, _), v in self._counters.items() if n == name)

    def observe(self, stage: str, seconds: float) -> None:
        """Add one latency observation for ``stage``."""
        with self._lock:
            buckets = self._hist.setdefault(stage, [0.0] * len(BUCKETS))
            for n, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    buckets[n] += 1
            self._sum[stage] = self._sum.get(stage, 0.0) + seconds
            self._count[stage] = self._count.get(stage, 0) + 1

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        """Increase counter ``glioedge_<name>_total`` with ``labels``."""
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._counters[key] = self._counters.get(key, 0.0) + amount

    def tick(self) -> None:
        """Record that the daemon loop is alive."""
        self.last_tick = time.time()

    def render(self, job_counts: Mapping[str, int],
               delivery_counts: Mapping[tuple[str, str], int]) -> str:
        """The exposition text (:data:`CONTENT_TYPE`).

        Raises:
            MissingDependencyError: ``prometheus_client`` is not installed (``glioedge[runtime]``).
        """
        client = require("prometheus_client", "serving /metrics")
        registry = client.CollectorRegistry(auto_describe=False)  # this request's, not the global one
        registry.register(_Collector(list(self._families(job_counts, delivery_counts))))
        return client.generate_latest(registry).decode("utf-8")

    def _families(self, job_counts: Mapping[str, int],
                  delivery_counts: Mapping[tuple[str, str], int]) -> Iterator[Any]:
        core = require("prometheus_client.core", "serving /metrics")
        up = core.GaugeMetricFamily("glioedge_up", "1 while the daemon runs.", value=1)
        yield up
        jobs = core.GaugeMetricFamily("glioedge_jobs", "Jobs in the store by state.", labels=["state"])
        for state, n in sorted(job_counts.items()):
            jobs.add_metric([state], n)
        yield jobs
        deliveries = core.GaugeMetricFamily(
            "glioedge_delivery_rows", "Delivery rows in the store by destination and state.",
            labels=["destination", "state"])
        for (destination, state), n in sorted(delivery_counts.items()):
            deliveries.add_metric([destination, state], n)
        yield deliveries
        with self._lock:
            stages = core.HistogramMetricFamily("glioedge_stage_seconds", "Latency of each stage of a job.",
                                                labels=["stage"])
            for stage in sorted(self._hist):
                buckets = [(str(bound), n) for bound, n in zip(BUCKETS, self._hist[stage], strict=True)]
                stages.add_metric([stage], [*buckets, ("+Inf", self._count[stage])], self._sum[stage])
            counters = sorted(self._counters.items())
        yield stages
        for name in sorted({n for (n, _), _ in counters}):
            family = core.Metric(f"glioedge_{name}", COUNTER_HELP.get(name, f"glioedge {name}."), "counter")
            for (n, labels), value in counters:
                if n == name:
                    family.add_sample(f"glioedge_{name}_total", dict(labels), value)
            yield family
        gpus = gpu_memory()
        if gpus:
            used = core.GaugeMetricFamily("glioedge_gpu_memory_used_bytes", "GPU memory in use (nvidia-smi).",
                                          labels=["gpu"])
            total = core.GaugeMetricFamily("glioedge_gpu_memory_total_bytes", "GPU memory (nvidia-smi).",
                                           labels=["gpu"])
            for index, (in_use, size) in gpus.items():
                used.add_metric([index], in_use)
                total.add_metric([index], size)
            yield used
            yield total


class _Collector:
    """A ``prometheus_client`` collector of metric families computed for one request."""

    def __init__(self, families: list[Any]) -> None:
        self._families = families

    def collect(self) -> Iterator[Any]:
        yield from self._families


_GPU_CACHE: dict[str, Any] = {"at": 0.0, "value": {}}


def gpu_memory(max_age: float = 10.0) -> dict[str, tuple[int, int]]:
    """``{index: (used bytes, total bytes)}`` from ``nvidia-smi`` (cached), or ``{}`` without a GPU."""
    if time.time() - _GPU_CACHE["at"] < max_age:
        return _GPU_CACHE["value"]
    value: dict[str, tuple[int, int]] = {}
    exe = shutil.which("nvidia-smi")
    if exe:
        try:
            out = subprocess.run([exe, "--query-gpu=index,memory.used,memory.total",
                                  "--format=csv,noheader,nounits"], capture_output=True, text=True,
                                 timeout=5, check=True).stdout
            for line in out.strip().splitlines():
                index, used, total = (x.strip() for x in line.split(","))
                value[index] = (int(float(used)) * 2**20, int(float(total)) * 2**20)
        except (OSError, subprocess.SubprocessError, ValueError):
            value = {}
    _GPU_CACHE.update(at=time.time(), value=value)
    return value


#: Seconds a connection may sit idle (a slow or silent client) before its handler gives up.
REQUEST_TIMEOUT = 10.0
MISDIRECTED = (421, "text/plain", "misdirected request: this Host name is not served here (the "
               "box's name or address must be in [health] allowed_hosts)\n")
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
         b"Connection: close\r\n\r\n")


class _BoundedHTTPServer(ThreadingHTTPServer):
    """A thread per connection, but at most ``max_connections`` at once: a connection beyond
    them is answered 503 at once and closed, so a flood of connections (or idle sockets) cannot
    grow the daemon's threads without bound."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, max_connections: int) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.settimeout(1.0)
                request.sendall(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (broken pipe, reset) is no error: no traceback on stderr;
        anything else is one log line, not a bare traceback."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError):
            return
        logger.error("status page request failed", exc_info=exc, extra={"event": "health"})


def host_names(bound: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The ``Host`` header names accepted (lower case, without port): the loopback names, the
    bound address when it is a specific one, and ``extra`` (``[health] allowed_hosts``)."""
    names = {"localhost", "127.0.0.1", "::1", *(h.strip().lower() for h in extra if h.strip())}
    try:
        if not ipaddress.ip_address(bound).is_unspecified:
            names.add(str(ipaddress.ip_address(bound)))
    except ValueError:
        names.add(bound.lower())
    return frozenset(names)


def host_of(header: str) -> str:
    """``example:9100`` → ``example``; ``[::1]:9100`` → ``::1`` (lower case)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class HealthServer:
    """``/healthz`` and ``/metrics`` served from a daemon thread.

    Args:
        host: Address to bind (loopback by default).
        port: TCP port; 0 picks a free one (see :attr:`port` after :meth:`start`).
        metrics: The daemon's metrics.
        snapshot: Returns ``(job counts, delivery counts)`` from the store (called per request).
        stall_after: Seconds without a loop tick after which ``/healthz`` answers 503 ...
        job_limit: ... unless one job is running for less than this many seconds.
        pages: Other read-only pages (the status page, QA images): called with the path and the
            ``/healthz`` body, returns ``(status, content type, body)`` or None (404).
        allowed_hosts: ``Host`` names accepted besides loopback and the bound address; any
            other answers 421 (a DNS-rebinding page in an operator's browser cannot read it).
        max_connections: Connections served at once; more are answered 503 and closed.
    """

    def __init__(self, host: str, port: int, metrics: Metrics,
                 snapshot: Callable[[], tuple[dict[str, int], dict[tuple[str, str], int]]],
                 stall_after: float = 120.0, job_limit: float = 3600.0,
                 pages: Callable[[str, dict[str, Any]], tuple[int, str, bytes | str] | None]
                 | None = None, allowed_hosts: Iterable[str] = (), max_connections: int = 8) -> None:
        self.metrics = metrics
        self.allowed_hosts = host_names(host, allowed_hosts)
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            timeout = REQUEST_TIMEOUT  # a silent client frees its slot

            def do_GET(self) -> None:
                try:
                    code, ctype, body = (outer.respond(self.path) if outer.host_allowed(self.headers)
                                         else MISDIRECTED)
                except Exception as exc:  # the endpoint must never take the daemon down
                    code, ctype, body = 500, "text/plain", f"error: {type(exc).__name__}\n"
                data = body.encode() if isinstance(body, str) else body
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except ConnectionError:  # the client hung up: not the daemon's problem
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                return  # no per-request access log

        self._server = _BoundedHTTPServer((host, port), _Handler, max(1, int(max_connections)))
        self.snapshot = snapshot
        self.stall_after = stall_after
        self.job_limit = job_limit
        self.pages = pages
        self._thread = threading.Thread(target=self._server.serve_forever, name="glioedge-health",
                                        daemon=True)

    def host_allowed(self, headers: Any) -> bool:
        """Whether the request's ``Host`` names this server (DNS rebinding: a page of another
        site, resolved to loopback by its own DNS, sends its own name)."""
        return host_of(str(headers.get("Host", ""))) in self.allowed_hosts

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._server.server_address[1])

    def respond(self, path: str) -> tuple[int, str, str | bytes]:
        """``(status, content type, body)`` for ``path``."""
        path = path.split("?", maxsplit=1)[0]
        if path == "/metrics":
            jobs, deliveries = self.snapshot()
            return 200, CONTENT_TYPE, self.metrics.render(jobs, deliveries)
        if path == "/healthz":
            body = self.health()
            code = 200 if body["status"] == "ok" else 503
            return code, "application/json", json.dumps(body) + "\n"
        if self.pages is not None:
            page = self.pages(path, self.health())
            if page is not None:
                return page
        return 404, "text/plain", "not found; try /, /healthz or /metrics\n"

    def health(self) -> dict[str, Any]:
        """The ``/healthz`` body: ``status`` ok, degraded or stalled, and what it is based on."""
        if self.metrics.starting:  # loading the model; a first TensorRT engine build takes minutes
            return {"status": "starting", "uptime_s": round(time.time() - self.metrics.started, 3),
                    "jobs": self.snapshot()[0], "problems": dict(self.metrics.problems)}
        now = time.time()
        age = now - self.metrics.last_tick
        busy = self.metrics.busy_since
        busy_for = None if busy is None else now - busy
        jobs, _ = self.snapshot()
        job_id, limit = self.metrics.busy_job, self.metrics.busy_limit or self.job_limit
        # a job is given its own time limit (the daemon kills it there) plus the loop's margin
        overdue = busy_for is not None and busy_for >= limit + self.stall_after
        alive = not overdue and (age < self.stall_after or busy_for is not None)
        problems = dict(self.metrics.problems)
        status = "stalled" if not alive else "degraded" if problems else "ok"
        body = {"status": status, "loop_age_s": round(age, 3),
                "job_running_s": None if busy_for is None else round(busy_for, 3),
                "uptime_s": round(now - self.metrics.started, 3), "jobs": jobs,
                "problems": problems}
        if busy_for is not None:
            body["job"] = {"id": job_id, "running_s": round(busy_for, 3), "limit_s": limit}
        if overdue:
            body["stalled_job"] = job_id
        return body

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (if started) and close the socket."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
