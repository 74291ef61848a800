"""``glioedge watch`` with injected delays, so a test can ``kill -9`` it at a known stage.

``python -m tests.runtime.daemon.slow_daemon INFER_DELAY DELIVER_DELAY watch ARGS...``: each
segmentation sleeps ``INFER_DELAY`` seconds before the real inference, and each C-STORE sleeps
``DELIVER_DELAY`` seconds *after* the PACS has stored the SEG and before the acknowledgement is
recorded (the worst moment to die). Test-only: production code has no such hook.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from glioedge.runtime.daemon import commands
from glioedge.runtime.daemon.delivery import CStoreDestination
from glioedge.runtime.segmenter import Segmenter


def main() -> int:
    """Patch the delays in, then run the command line."""
    infer_delay, deliver_delay = float(sys.argv[1]), float(sys.argv[2])
    segment, send = Segmenter.segment_study, CStoreDestination.send

    def slow_segment(self: Segmenter, source: Any, **kwargs: Any) -> Any:
        time.sleep(infer_delay)
        return segment(self, source, **kwargs)

    def slow_send(self: CStoreDestination, output_dir: Path) -> None:
        send(self, output_dir)
        time.sleep(deliver_delay)

    Segmenter.segment_study = slow_segment  # type: ignore[method-assign]
    CStoreDestination.send = slow_send  # type: ignore[method-assign]
    return commands.main(sys.argv[3:])


if __name__ == "__main__":
    sys.exit(main())
