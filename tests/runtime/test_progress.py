"""Progress for a person waiting: stages with their times, windows done of N, a bar only on a TTY."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest

from glioedge.data.sliding_window import count_windows, sliding_window_predict
from glioedge.progress import Progress, current_progress, use_progress


def test_stages_and_steps_are_log_lines_without_a_tty(caplog: pytest.LogCaptureFixture):
    stream = io.StringIO()
    caplog.set_level(logging.INFO, logger="glioedge.progress")
    with use_progress(Progress(stream)) as progress:
        progress.stage("reading")
        progress.stage("segmentation")
        for done in range(1, 41):
            current_progress().steps(done, 40)
    assert stream.getvalue() == ""  # nothing drawn on a non-terminal
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:2] == ["stage: reading", "stage: segmentation"]
    steps = [ln for ln in lines if "windows" in ln]
    assert steps[-1] == "segmentation: windows 40 of 40" and 5 <= len(steps) <= 11  # throttled
    assert lines[-1].startswith("done in ") and "reading" in lines[-1] and "segmentation" in lines[-1]
    assert list(progress.times) == ["reading", "segmentation"]
    assert current_progress().enabled is False  # reset after the block


def test_tty_draws_stage_lines_and_a_bar():
    stream = io.StringIO()
    progress = Progress(stream, tty=True)
    progress.stage("brain extraction")
    progress.stage("segmentation")
    progress.steps(3, 8)
    progress.steps(8, 8)
    times = progress.finish()
    out = stream.getvalue()
    assert "brain extraction …" in out and "segmentation …" in out and "8" in out
    assert out.rstrip().splitlines()[-1].startswith("done in ")
    assert set(times) == {"brain extraction", "segmentation"} and all(t >= 0 for t in times.values())


def test_sliding_window_reports_windows_done_of_n():
    image = np.zeros((1, 40, 40, 24), np.float32)
    seen: list[tuple[int, int]] = []
    sliding_window_predict(image, lambda x: np.zeros((x.shape[0], 2, *x.shape[2:]), np.float32),
                           (16, 16, 16), num_classes=2, batch_size=3,
                           on_progress=lambda d, n: seen.append((d, n)))
    n = count_windows((40, 40, 24), (16, 16, 16))
    assert seen[-1] == (n, n) and all(t == n for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and len(seen) == -(-n // 3)
