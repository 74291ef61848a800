"""Inference in a child process, so that a crash of a job is not a crash of the daemon.

The daemon starts ``python -m glioedge.runtime.daemon.jobproc CONFIG_JSON PARENT_PID``. The child
loads the segmenter once, says ``ready``, then answers one request per line on stdin with one
reply per line on stdout, both JSON (no pickle): read the job's files, segment, write the outputs
into the staging folder the daemon names. The daemon publishes the folder and keeps the books.

* A segfault or an out-of-memory kill of the child ends the reply stream: the daemon counts the
  attempt and starts a new child for the next job.
* A stop of the daemon (even ``kill -9``) takes the child with it (``PR_SET_PDEATHSIG`` on Linux,
  end of stdin elsewhere); the job is then not charged an attempt (see :meth:`JobStore.recover`).
* When the outputs cannot be written (full outbox), the child keeps the finished result in memory
  and writes it on the next request for the same job key, without running inference again.
* The child ignores SIGINT and SIGTERM (a Ctrl-C or ``systemctl stop`` reaches the whole process
  group): the daemon finishes the running job, then closes the child.
"""

from __future__ import annotations

import ctypes
import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, ClassVar

import pydicom
from pydicom.dataset import Dataset

from glioedge.errors import BackendError, ConfigError, GlioedgeError, InputError, ModelError
from glioedge.runtime.daemon.config import DaemonConfig

logger = logging.getLogger(__name__)

#: Finished results kept in the child while the outbox cannot take them.
KEEP_RESULTS = 2
_ERRORS: dict[str, type[GlioedgeError]] = {"ModelError": ModelError, "BackendError": BackendError,
                                           "ConfigError": ConfigError, "InputError": InputError}


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

    Args:
        config: The daemon configuration (passed to the child as JSON).
    """

    #: The child's command line before its two arguments (tests put a slowed-down child here).
    command: ClassVar[list[str]] = [sys.executable, "-m", "glioedge.runtime.daemon.jobproc"]

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def start(self) -> dict[str, Any]:
        """Start the child and wait until its segmenter is loaded.

        Returns:
            The child's ``ready`` message: ``bundle_id``, ``modalities``, ``backend``.

        Raises:
            ModelError, BackendError, ConfigError: as the child reported them.
            GlioedgeError: the child died before it was ready.
        """
        self.close()
        argv = [*self.command, json.dumps(self.config.to_dict(redact=True)), str(os.getpid())]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     bufsize=1)
        reply = self._read()
        if reply is None or reply.get("status") != "ready":
            self.close()
            if reply is None:
                raise GlioedgeError("the inference process exited before it was ready (see the "
                                    "log lines above)")
            raise _ERRORS.get(str(reply.get("kind")), GlioedgeError)(str(reply.get("message")))
        self.info = reply
        logger.info("inference process ready", extra={"event": "jobproc", "pid": self.proc.pid,
                                                       "backend": reply.get("backend"),
                                                       "bundle_id": reply.get("bundle_id")})
        return reply

    def _read(self) -> dict[str, Any] | None:
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            return None
        return dict(json.loads(line))

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one job; wait for its reply.

        Returns:
            The child's reply, or ``{"status": "crashed", "message": ...}`` when it died meanwhile.

        Raises:
            GlioedgeError: a new child could not be started.
        """
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            reply = self._read()
        except (BrokenPipeError, ValueError):
            reply = None
        if reply is not None:
            return reply
        code = self.proc.wait()
        self.proc = None
        return {"status": "crashed", "kind": "crash", "message": describe_exit(code)}

    def close(self, timeout: float = 30.0) -> None:
        """Ask the child to exit (kill it after ``timeout`` seconds)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                assert proc.stdin is not None
                proc.stdin.write(json.dumps({"op": "exit"}) + "\n")
                proc.stdin.close()
            except (BrokenPipeError, ValueError, OSError):
                pass
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
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
            return {"status": "error", "kind": type(exc).__name__, "message": f"{type(exc).__name__}: {exc}"}
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
    """The child: ``CONFIG_JSON PARENT_PID``; requests on stdin, replies on stdout."""
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
                                          config=SegmenterConfig.from_dict(config.segmenter))
        rules = None
        if config.model.rules:
            from glioedge.dicom_io import load_rules

            rules = load_rules(config.model.rules)
    except GlioedgeError as exc:
        _reply(protocol, {"status": "error", "kind": type(exc).__name__, "message": str(exc)})
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
