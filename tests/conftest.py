"""Suite-wide settings: no process of the suite is forked from the pytest process.

pytest's process holds threads by the time most tests run (ONNX Runtime and torch pools, the
receiver's and the daemon's threads, Orthanc watchers). A child *forked* from it (multiprocessing's
default on Linux) inherits every lock those threads held at that instant but none of the threads,
and can wait for one of them forever. It did: a run of ``tests/bench`` hung with pytest in
``waitpid`` on a fork of itself blocked in ``futex_wait`` — nnU-Net's
``get_filenames_of_train_images_and_targets`` opens a default-context ``Pool(12)``, called by the
bench's planning and by ``verify_dataset_integrity`` inside the test process; torch's ``DataLoader``
workers (``tests/data``) fork the same way. ``forkserver`` starts children from a clean,
single-threaded server process instead; ``spawn`` would too, at an interpreter start per child.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
import warnings

import pytest


def _warn_fork() -> None:
    """A fork of the test process is the hang above waiting to happen: name the caller in
    pytest's warnings summary."""
    warnings.warn("the pytest process forked (a fork after threads can deadlock the child); "
                  "caller:\n" + "".join(traceback.format_stack(limit=10)[:-1]), RuntimeWarning,
                  stacklevel=2)


def pytest_configure(config: pytest.Config) -> None:
    multiprocessing.set_start_method("forkserver", force=True)
    os.register_at_fork(before=_warn_fork)
