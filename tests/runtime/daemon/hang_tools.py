"""Misbehaving processes for the hang tests: a brain-mask command that never returns, and
inference children that hang or answer nonsense (the daemon's process handling is what is tested;
the real inference child is tested through the daemon in test_hangs).

``python -m tests.runtime.daemon.hang_tools mask PIDFILE INPUT OUTPUT``: a brain-mask command that
starts a grandchild in its own session (out of reach of a process-group kill) and one in its own
group, records the three pids, then sleeps: it never writes OUTPUT.
``python -m tests.runtime.daemon.hang_tools child MODE CONFIG_JSON PARENT_PID``: an inference child
that says ``ready`` and then, on the first request, ``hang``s (after starting a grandchild in
its own session and writing a file into ``TMPDIR``) or answers ``garbage`` and stays alive.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _spawn_sleepers() -> list[int]:
    quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    own_session = subprocess.Popen(["sleep", "300"], start_new_session=True, **quiet)
    same_group = subprocess.Popen(["sleep", "300"], **quiet)
    return [own_session.pid, same_group.pid]


def mask(pidfile: str) -> None:
    pids = [os.getpid(), *_spawn_sleepers()]
    with Path(pidfile).open("a") as fh:  # one line per run of the command
        fh.write(json.dumps(pids) + "\n")
    time.sleep(300)


def child(mode: str) -> None:
    out = os.fdopen(os.dup(1), "w")
    out.write(json.dumps({"status": "ready", "bundle_id": "fake", "modalities": ["flair", "t1ce"],
                          "backend": "none"}) + "\n")
    out.flush()
    request = json.loads(sys.stdin.readline())
    if mode == "garbage":
        out.write("this is not JSON\n")
        out.flush()
        time.sleep(300)
    scratch = Path(tempfile.mkdtemp(prefix="glioedge-bet-"))  # in TMPDIR, like the brain mask
    (scratch / "flair.nii.gz").write_bytes(b"patient image")
    Path(request["pids_file"]).write_text(json.dumps([os.getpid(), *_spawn_sleepers()]))
    time.sleep(300)


if __name__ == "__main__":
    if sys.argv[1] == "mask":
        mask(sys.argv[2])
    else:
        child(sys.argv[2])
