"""The inference child's whole process tree: kill it at once, sweep what a killed daemon left.

The child runs in its own session (so its process group holds everything it starts that does not
start a session of its own) with two things in its environment that every descendant inherits:
``TMPDIR`` pointing at the daemon's private work folder (``<state>/work``: the NIfTI copies of a
study written for a brain-mask command live there, never in the shared ``/tmp``) and
``GLIOEDGE_JOB_GROUP``, a token naming the daemon's state folder. Killing a job kills its process
group *and* every process carrying the token (a brain-mask command that started its own session
included), then empties the work folder; at start-up the daemon does the same for leftovers of a
previous run that was killed with ``kill -9`` (Linux ``/proc``; elsewhere only the group is killed).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
from pathlib import Path

logger = logging.getLogger(__name__)

#: Environment variable marking every process of a daemon's inference tree.
MARKER_ENV = "GLIOEDGE_JOB_GROUP"
#: The inference child's private temporary folder, under the state folder.
WORK_DIR = "work"


def marker_for(state_dir: str | Path) -> str:
    """The token of one state folder (one daemon at a time holds it: the state lock)."""
    return hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:20]


def child_environment(state_dir: str | Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) with ``TMPDIR`` and the marker of this state folder."""
    env = dict(os.environ if base is None else base)
    work = Path(state_dir) / WORK_DIR
    work.mkdir(parents=True, exist_ok=True)
    env.update({"TMPDIR": str(work), MARKER_ENV: marker_for(state_dir)})
    return env


def marked_pids(marker: str) -> list[int]:
    """Processes of this user whose environment carries ``marker`` (empty without ``/proc``)."""
    needle = f"{MARKER_ENV}={marker}".encode()
    found = []
    me = os.getpid()
    try:
        names = os.listdir("/proc")  # noqa: PTH208 (thousands of entries, polled)
    except OSError:
        return []
    for name in names:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:  # noqa: PTH123 (hot loop)
                environ = fh.read()
        except OSError:  # gone, or another user's process
            continue
        if needle in environ.split(b"\0"):
            found.append(int(name))
    return found


def kill_tree(pgid: int | None, marker: str) -> int:
    """SIGKILL the process group ``pgid`` and every process carrying ``marker``.

    Returns:
        How many processes were signalled (the group counts as one).
    """
    killed = 0
    if pgid is not None:
        try:
            os.killpg(pgid, signal.SIGKILL)
            killed += 1
        except (ProcessLookupError, PermissionError):
            pass
    for _ in range(3):  # a process forking while we kill: look again
        pids = marked_pids(marker)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
    return killed


def clean_work(state_dir: str | Path) -> int:
    """Empty the work folder (temporary copies of patients' images); returns entries removed."""
    work = Path(state_dir) / WORK_DIR
    removed = 0
    try:
        entries = list(work.iterdir())
    except OSError:
        return 0
    for entry in entries:
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed += 1
        except OSError as exc:
            logger.error("cannot remove a temporary file of a job", extra={
                "event": "jobproc", "error": f"{type(exc).__name__}: {exc.strerror or exc}"})
    return removed


def sweep(state_dir: str | Path) -> dict[str, int]:
    """At start-up: kill a previous run's inference tree and remove its temporary files."""
    killed = kill_tree(None, marker_for(state_dir))
    removed = clean_work(state_dir)
    if killed or removed:
        logger.warning("removed what a previous run left behind", extra={
            "event": "start", "processes_killed": killed, "temporary_entries_removed": removed})
    return {"processes_killed": killed, "temporary_entries_removed": removed}
