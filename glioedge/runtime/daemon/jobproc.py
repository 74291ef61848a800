"""Inference in a child process, so that a crash of a job is not a crash of the daemon.

The daemon starts ``python -m glioedge.runtime.daemon.jobproc CONFIG_JSON PARENT_PID RULES_JSON``
(the modality rules the daemon loaded, or ``null``). The child
loads the segmenter once, says ``ready``, then answers one request per line on stdin with one
reply per line on stdout, both JSON (no pickle): read the job's files, segment, write the outputs
into the staging folder the daemon names. The daemon publishes the folder and keeps the books.

* A segfault or an out-of-memory kill of the child ends the reply stream: the daemon counts the
  attempt and starts a new child for the next job.
* A stop of the daemon (even ``kill -9``) takes the child with it (``PR_SET_PDEATHSIG`` on Linux,
  end of stdin elsewhere); the job is then not charged an attempt (see :meth:`JobStore.recover`).
* When the outputs cannot be written (full outbox), the child keeps the finished result in memory
  and writes it on the next request for the same job key, without running inference again.
* The child ignores SIGINT and SIGTERM and runs in its own session: on a stop the daemon waits
  ``watch.stop_grace`` seconds for the running job, then kills the child's whole process tree (the
  job is re-queued without being charged). A job that runs past its time limit
  (``watch.job_timeout``) is killed the same way and charged an attempt; so is a child whose reply
  is not a JSON object. Temporary files live in the daemon's private ``<state>/work`` folder and
  are removed after every kill or crash (:mod:`.procs`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, ClassVar

import pydicom
from pydicom.dataset import Dataset

from glioedge.dicom_io.modality import ModalityRules, load_rules
from glioedge.errors import GlioedgeError, InputError, error_class, lineage
from glioedge.runtime.daemon import procs
from glioedge.runtime.daemon.config import DaemonConfig

logger = logging.getLogger(__name__)

#: Finished results kept in the child while the outbox cannot take them.
KEEP_RESULTS = 2


def error_reply(exc: BaseException, message: str | None = None, **extra: Any) -> dict[str, Any]:
    """The child's reply for an error: its class name (``kind``, the metrics label), its
    :func:`~glioedge.errors.lineage` and the message."""
    return {"status": "error", "kind": type(exc).__name__, "lineage": lineage(exc),
            "message": str(exc) if message is None else message, **extra}


def raised_error(reply: dict[str, Any]) -> GlioedgeError:
    """The exception of ``glioedge.errors`` that an error reply stands for: the class the child
    raised, or its nearest base in the hierarchy (so exit codes and handling are the ones an
    in-process error gets)."""
    names = [str(reply.get("kind")), *map(str, reply.get("lineage") or ())]
    return error_class(names)(str(reply.get("message")))


#: Environment variables the inference child may inherit (exact names, then prefixes): what
#: Python, the locale, the temporary folder, CUDA/TensorRT/ONNX Runtime and the thread pools read.
#: Nothing else: the delivery secrets (``stowrs_*_env``) and whatever else the daemon's
#: environment holds never reach the process that parses untrusted DICOM and runs model files.
CHILD_ENV_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
    "PYTHONPATH", "PYTHONHOME", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONWARNINGS",
    "PYTHONHASHSEED", "VIRTUAL_ENV", "LD_LIBRARY_PATH", "XDG_CACHE_HOME", "SYSTEMROOT",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
})
CHILD_ENV_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "TRT_", "TENSORRT_", "ORT_", "GLIOEDGE_CHILD_",
                      "COVERAGE_")


def child_environment(config: DaemonConfig, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The inference child's environment: the allowlisted variables of ``environ`` (default: ours)
    and those of ``[model] pass_env``, never one that ``[delivery]`` names as holding a secret."""
    source = dict(os.environ if environ is None else environ)
    secret = {config.delivery.stowrs_password_env, config.delivery.stowrs_token_env} - {""}
    extra = set(config.model.pass_env)
    return {k: v for k, v in source.items()
            if (k in CHILD_ENV_NAMES or k in extra or k.startswith(CHILD_ENV_PREFIXES))
            and k not in secret}


def read_study(files: Sequence[str]) -> list[Dataset]:
    """Read a job's headers (no pixel data): intake decodes the pixels of the chosen series only,
    from these files, so the diffusion, perfusion and localisers of a study are never decoded.

    Raises:
        InputError: a file vanished or cannot be read, naming it.
    """
    datasets = []
    for f in files:
        try:
            datasets.append(pydicom.dcmread(f, stop_before_pixels=True))
        except FileNotFoundError as exc:
            raise InputError(f"{f}: input file disappeared before processing") from exc
        except Exception as exc:  # any reader failure: the file is bad, name it
            raise InputError(f"{f}: cannot be read ({type(exc).__name__}: {exc})") from exc
    return datasets


class JobProcess:
    """The daemon's handle on its inference child (started on first use, restarted after a crash).

    The child runs in its own session with a private ``TMPDIR`` (:mod:`.procs`); a job that does
    not answer within its time limit, a reply that is not a JSON object, or a stop of the daemon
    (after ``watch.stop_grace`` seconds) kills the child's whole process tree and removes its
    temporary files.

    Args:
        config: The daemon configuration (passed to the child as JSON).
        stop: The daemon's stop event: a wait for the child gives up ``stop_grace`` seconds after
            it is set.
        rules: The modality rules the daemon loaded from ``model.rules`` (loaded here when not
            given). They reach the child as their JSON form, so parent and child use the same
            validated rules and the child never reads the rule file again (an edit of the file
            while the daemon runs cannot make a restarted child choose series differently).

    Raises:
        ConfigError: ``rules`` is not given and the rule file is invalid.
    """

    #: The child's command line before its arguments (tests put a slowed-down child here).
    command: ClassVar[list[str]] = [sys.executable, "-m", "glioedge.runtime.daemon.jobproc"]

    def __init__(self, config: DaemonConfig, stop: threading.Event | None = None,
                 rules: ModalityRules | None = None) -> None:
        self.config = config
        self.stop = stop or threading.Event()
        if rules is None and config.model.rules:
            rules = load_rules(config.model.rules)
        self.rules = rules
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self._buffer = b""
        self._state = config.watch.state_dir
        self._marker = procs.marker_for(self._state)

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def start(self) -> dict[str, Any]:
        """Start the child and wait until its segmenter is loaded (or the daemon is stopped).

        Returns:
            The child's ``ready`` message: ``bundle_id``, ``modalities``, ``backend``.

        Raises:
            GlioedgeError: what the child raised while loading, as the same class of
                ``glioedge.errors`` (e.g. ``VerificationError`` for a tampered bundle) or its
                nearest base there (:func:`raised_error`); a plain ``GlioedgeError`` when the
                child died (or answered nonsense) before it was ready, or the daemon was stopped.
        """
        self.close()
        argv = [*self.command, json.dumps(self.config.to_dict(redact=True)), str(os.getpid()),
                json.dumps(self.rules.to_dict() if self.rules is not None else None)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     start_new_session=True,
                                     env=procs.child_environment(self._state,
                                                                 child_environment(self.config)))
        self._buffer = b""
        outcome, reply = self._read(None)
        if outcome != "ok" or reply is None or reply.get("status") != "ready":
            self.kill()
            if outcome == "stopped":
                raise GlioedgeError("stopped while the inference process was starting")
            if outcome == "malformed":
                raise GlioedgeError("the inference process answered with a malformed line before it "
                                    "was ready")
            if reply is None:
                raise GlioedgeError("the inference process exited before it was ready (see the "
                                    "log lines above)")
            raise raised_error(reply)
        self.info = reply
        logger.info("inference process ready", extra={"event": "jobproc", "pid": self.proc.pid,
                                                       "backend": reply.get("backend"),
                                                       "bundle_id": reply.get("bundle_id")})
        return reply

    def _read(self, timeout: float | None) -> tuple[str, dict[str, Any] | None]:
        """One reply line: ``("ok", reply)``, or ``("eof" | "timeout" | "stopped" | "malformed",
        None)``; waits at most ``timeout`` seconds (None: no limit), and at most
        ``watch.stop_grace`` seconds once the stop event is set."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = None if timeout is None else time.monotonic() + timeout
        stop_deadline: float | None = None
        while b"\n" not in self._buffer:
            now = time.monotonic()
            if stop_deadline is None and self.stop.is_set():
                stop_deadline = now + self.config.watch.stop_grace
            if stop_deadline is not None and now >= stop_deadline:
                return "stopped", None
            if deadline is not None and now >= deadline:
                return "timeout", None
            limits = [d - now for d in (deadline, stop_deadline) if d is not None]
            ready, _, _ = select.select([fd], [], [], max(0.0, min([0.25, *limits])))
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return "eof", None
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            reply = json.loads(line)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            return "malformed", None
        return "ok", reply

    def run(self, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send one job; wait at most ``timeout`` seconds for its reply.

        Returns:
            The child's reply, or ``{"status": "crashed" | "timeout" | "stopped" | "error", ...}``
            when it died, ran past ``timeout``, was stopped with the daemon, or answered with a
            malformed line (the last three kill the child's whole process tree).

        Raises:
            GlioedgeError: a new child could not be started.
        """
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
            outcome, reply = self._read(timeout)
        except (BrokenPipeError, ValueError):
            outcome, reply = "eof", None
        if outcome == "ok" and reply is not None:
            return reply
        if outcome == "eof":
            code = self._reap()
            return {"status": "crashed", "kind": "crash", "message": describe_exit(code)}
        self.kill()
        if outcome == "timeout":
            return {"status": "timeout", "kind": "timeout",
                    "message": f"the job ran past its time limit of {timeout:.0f} s: the inference "
                    "process and everything it started were killed"}
        if outcome == "stopped":
            return {"status": "stopped", "kind": "stopped",
                    "message": "interrupted: the daemon was stopped while the job ran"}
        return {"status": "error", "kind": "protocol",
                "message": "the inference process answered with a malformed line; it was killed"}

    def _reap(self) -> int:
        """Wait for a child whose output ended; kill what it left behind; its exit status."""
        proc, self.proc = self.proc, None
        assert proc is not None
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # closed its output but lives on
            procs.kill_tree(proc.pid, self._marker)
            code = proc.wait(timeout=10)
        procs.kill_tree(proc.pid, self._marker)  # what it started may outlive it
        procs.clean_work(self._state)
        _close_streams(proc)
        return code

    def kill(self) -> None:
        """SIGKILL the child's process tree now and remove its temporary files."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        procs.kill_tree(proc.pid, self._marker)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # e.g. stuck in an uninterruptible read (NFS)
            logger.error("the killed inference process has not exited yet (uninterruptible wait?); "
                         "starting a new one", extra={"event": "jobproc", "pid": proc.pid})
        procs.clean_work(self._state)
        _close_streams(proc)

    def close(self, timeout: float = 30.0) -> None:
        """Ask the child to exit (kill its process tree after ``timeout`` seconds)."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                assert proc.stdin is not None
                proc.stdin.write((json.dumps({"op": "exit"}) + "\n").encode())
                proc.stdin.close()
            except (BrokenPipeError, ValueError, OSError):
                pass
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout)
        self.kill()


def _close_streams(proc: subprocess.Popen[bytes]) -> None:
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def describe_exit(code: int) -> str:
    """``inference process killed by SIGSEGV`` and the like, for a job's error."""
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"inference process killed by {name}{hint} while running the job"
    return f"inference process exited with status {code} while running the job"


# ---- the child ---------------------------------------------------------------------------------
def _die_with_parent(parent: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG: SIGKILL when the daemon dies
    except (OSError, AttributeError):
        pass  # not Linux: the child ends when its stdin closes
    if os.getppid() != parent:  # the daemon died before prctl took effect
        os._exit(0)


def _reply(out: IO[str], message: dict[str, Any]) -> None:
    out.write(json.dumps(message, default=str) + "\n")
    out.flush()


def _run_job(segmenter: Any, rules: Any, request: dict[str, Any], kept: OrderedDict[str, Any]) -> dict:
    from glioedge.runtime.daemon.logging import remember_phi

    key = str(request["key"])
    staging = Path(request["staging"])
    result = kept.pop(key, None)
    reused = result is not None
    timings: dict[str, float] = {}
    if result is None:
        try:
            datasets = read_study(request["files"])
            for ds in datasets:
                remember_phi(ds)
            result = segmenter.segment_study(datasets, rules=rules)
        except InputError as exc:
            return {"status": "input_error", "message": str(exc)}
        except Exception as exc:  # a job's exception is a failed attempt, never the child's end
            logger.exception("inference failed", extra={"event": "jobproc", "job_id": request.get("job_id")})
            return error_reply(exc, f"{type(exc).__name__}: {exc}")
        timings = {k: float(v) for k, v in getattr(result, "timings", {}).items()}
    try:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        result.write(staging)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        kept[key] = result
        while len(kept) > KEEP_RESULTS:
            kept.popitem(last=False)
        return {"status": "write_error", "errno": exc.errno, "timings": timings,
                "code": errno.errorcode.get(exc.errno or 0, "?"), "message": exc.strerror or str(exc)}
    except Exception as exc:  # e.g. a DICOM encoding error: the job's failed attempt, not the child's end
        shutil.rmtree(staging, ignore_errors=True)
        logger.exception("writing the outputs failed", extra={"event": "jobproc",
                                                              "job_id": request.get("job_id")})
        return error_reply(exc, f"writing the outputs failed: {type(exc).__name__}: {exc}",
                           timings=timings)
    seg = getattr(result, "seg", None)
    return {"status": "written", "reused": reused,
            "seg_sop_uid": str(seg.SOPInstanceUID) if seg is not None else "",
            "timings": timings, "quality": _verdict(result)}


def _verdict(result: Any) -> dict[str, str]:
    """The result's quality verdict and its one-line summary, for the delivery policy."""
    from glioedge.runtime.quality import summary_of

    quality = dict(getattr(result, "quality", {}) or {})
    return {"verdict": str(quality.get("verdict", "ok")), "summary": summary_of(quality)}


def main(argv: Sequence[str] | None = None) -> int:
    """The child: ``CONFIG_JSON PARENT_PID [RULES_JSON]``; requests on stdin, replies on stdout."""
    args = list(sys.argv[1:] if argv is None else argv)
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever a library prints goes to stderr, never into the protocol
    sys.stdout = sys.stderr
    _die_with_parent(int(args[1]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from glioedge.runtime.daemon.logging import configure

    config = DaemonConfig.from_dict(json.loads(args[0]))
    configure(config.log.level, config.log.format)
    if config.watch.inbox:
        from glioedge.runtime.daemon.logging import register_private_folder

        inbox = Path(config.watch.inbox)
        for form in {str(inbox), str(inbox.absolute()), str(inbox.resolve())}:
            register_private_folder(form)
    try:
        from glioedge.runtime.segmenter import Segmenter, SegmenterConfig

        segmenter = Segmenter.from_bundle(config.model.bundle, backend=config.model.backend,
                                          device=config.model.device or None,
                                          config=SegmenterConfig.from_dict(config.segmenter),
                                          cache_dir=Path(config.model.engine_cache) if
                                          config.model.engine_cache else None)
        rules_data = json.loads(args[2]) if len(args) > 2 else None  # validated by the daemon
        rules = ModalityRules.from_dict(rules_data) if rules_data is not None else None
    except GlioedgeError as exc:
        _reply(protocol, error_reply(exc))
        return 2
    _reply(protocol, {"status": "ready", "bundle_id": segmenter.bundle_id,
                      "modalities": list(segmenter.bundle.manifest.modalities),
                      "backend": segmenter.backend.name})
    kept: OrderedDict[str, Any] = OrderedDict()
    try:
        for line in sys.stdin:
            request = json.loads(line)
            if request.get("op") == "exit":
                break
            _reply(protocol, _run_job(segmenter, rules, request, kept))
    finally:
        segmenter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
