"""Stage-by-stage progress for a person waiting at a terminal (or reading a log).

A :class:`Progress` is a sequence of stages (``reading``, ``brain extraction``, ``segmentation``,
``writing``): :meth:`Progress.stage` ends the previous stage and starts the next, so a caller adds
one line per stage without re-indenting its code; :meth:`Progress.steps` reports work inside a
stage (``windows 12 of 48``); :meth:`Progress.finish` ends the last stage and prints the time of
each. On a TTY the steps are a tqdm bar when tqdm is installed; otherwise (a log file, a daemon,
CI) they are plain log lines, at most one per tenth of the stage.

Library code reaches the active reporter through :func:`current_progress` (a context variable,
set by :func:`use_progress` around a command), which is a silent :class:`Progress` when nobody
asked for one. This module imports nothing of glioedge, so every part may use it.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

logger = logging.getLogger("glioedge.progress")

__all__ = ["Progress", "current_progress", "use_progress"]


class Progress:
    """Sequential stages with their wall times, and step counts within a stage.

    Args:
        stream: where TTY output goes (default ``sys.stderr``).
        tty: draw a live bar (default: whether ``stream`` is a terminal).
        enabled: ``False`` records times but shows nothing (the default reporter).
    """

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None,
                 enabled: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(enabled and (self.stream.isatty() if tty is None else tty))
        self.times: dict[str, float] = {}
        self._name: str | None = None
        self._t0 = 0.0
        self._bar: Any = None
        self._logged_tenth = -1

    # -- stages -----------------------------------------------------------------------------
    def stage(self, name: str) -> None:
        """End the current stage (if any) and start ``name``."""
        self._end()
        self._name, self._t0, self._logged_tenth = name, time.perf_counter(), -1
        if not self.enabled:
            return
        if self.tty:
            self.stream.write(f"{name} …\n")
            self.stream.flush()
        else:
            logger.info("stage: %s", name)

    def steps(self, done: int, total: int, unit: str = "windows") -> None:
        """``done`` of ``total`` units of the current stage are finished."""
        if not self.enabled or total <= 0:
            return
        if self.tty:
            if self._bar is None:
                self._bar = _tqdm(total, unit, self.stream)
            if self._bar is not None:
                self._bar.n = done
                self._bar.refresh()
                return
            self.stream.write(f"\r  {unit} {done} of {total}")
            if done >= total:
                self.stream.write("\n")
            self.stream.flush()
            return
        tenth = (10 * done) // total
        if tenth < self._logged_tenth:  # a new pass over the same stage (e.g. a re-run)
            self._logged_tenth = -1
        if tenth > self._logged_tenth:
            self._logged_tenth = tenth
            logger.info("%s: %s %d of %d", self._name or "progress", unit, done, total)

    def finish(self) -> dict[str, float]:
        """End the last stage, show every stage's time, and return them (seconds)."""
        self._end()
        if self.enabled and self.times:
            summary = ", ".join(f"{k} {v:.1f} s" for k, v in self.times.items())
            total = sum(self.times.values())
            if self.tty:
                self.stream.write(f"done in {total:.1f} s: {summary}\n")
                self.stream.flush()
            else:
                logger.info("done in %.1f s: %s", total, summary)
        return dict(self.times)

    def _end(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._name is not None:
            self.times[self._name] = self.times.get(self._name, 0.0) + time.perf_counter() - self._t0
            self._name = None


def _tqdm(total: int, unit: str, stream: TextIO) -> Any:
    """A tqdm bar, or ``None`` when tqdm is not installed (the runtime does not require it)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit=f" {unit}", file=stream, leave=False, dynamic_ncols=True)


_CURRENT: contextvars.ContextVar[Progress | None] = contextvars.ContextVar("glioedge_progress",
                                                                            default=None)


def current_progress() -> Progress:
    """The reporter set by :func:`use_progress`, or a silent one."""
    return _CURRENT.get() or Progress(enabled=False)


@contextmanager
def use_progress(progress: Progress) -> Iterator[Progress]:
    """Make ``progress`` the :func:`current_progress` inside the block; finish it at the end."""
    token = _CURRENT.set(progress)
    try:
        yield progress
    finally:
        _CURRENT.reset(token)
        progress.finish()
