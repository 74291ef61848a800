"""DDP: the training command runs under torchrun with two CPU processes (Gloo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from glioedge.train.checkpoint import read_meta


@pytest.mark.slow
def test_torchrun_two_cpu_processes_train_and_rank0_writes(tiny_cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "glioedge.cli", "train", "--data", str(tiny_cohort), "--out", str(out),
        "--preset", "tiny", "--patch", "32", "--spacing", "3", "--epochs", "1",
        "--iters-per-epoch", "2", "--val-fraction", "0.2", "--workers", "0", "--no-augment",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = read_meta(out / "checkpoints" / "final")
    assert meta.epoch == 1
    assert "student" in meta.metrics["val"]
