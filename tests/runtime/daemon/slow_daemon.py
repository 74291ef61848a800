"""``glioedge watch`` with injected delays, so a test can ``kill -9`` it at a known stage.

``python -m tests.runtime.daemon.slow_daemon INFER DELIVER_DELAY watch ARGS...``: the inference
child (:mod:`glioedge.runtime.daemon.jobproc`) is this module in ``child`` mode, whose
segmentation sleeps ``INFER`` seconds before the real inference (or, with ``INFER = segv``, kills
itself with SIGSEGV: a crashing back-end); each C-STORE sleeps ``DELIVER_DELAY`` seconds *after*
the PACS has stored the SEG and before the acknowledgement is recorded (the worst moment to die).
Test-only: production code has no such hook beyond :attr:`JobProcess.command`.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from glioedge.runtime.daemon import commands, jobproc
from glioedge.runtime.daemon.delivery import CStoreDestination


def child_command(infer: str) -> list[str]:
    """The command line of a slowed-down (or crashing) inference child."""
    return [sys.executable, "-m", "tests.runtime.daemon.slow_daemon", "child", infer]


def child(infer: str, argv: list[str]) -> int:
    """The inference child with the delay or crash patched into the segmenter."""
    from glioedge.runtime.segmenter import Segmenter

    segment = Segmenter.segment_study

    def slow_segment(self: Segmenter, source: Any, **kwargs: Any) -> Any:
        if infer == "segv":
            os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(float(infer))
        return segment(self, source, **kwargs)

    Segmenter.segment_study = slow_segment  # type: ignore[method-assign]
    return jobproc.main(argv)


def main() -> int:
    """Patch the delays in, then run the command line."""
    if sys.argv[1] == "child":
        return child(sys.argv[2], sys.argv[3:])
    infer, deliver_delay = sys.argv[1], float(sys.argv[2])
    jobproc.JobProcess.command = child_command(infer)
    send = CStoreDestination.send

    def slow_send(self: CStoreDestination, output_dir: Path) -> None:
        send(self, output_dir)
        time.sleep(deliver_delay)

    CStoreDestination.send = slow_send  # type: ignore[method-assign]
    return commands.main(sys.argv[3:])


if __name__ == "__main__":
    sys.exit(main())
