"""bench/gpu_probe.sh cannot rot between GPU loans: its dry run passes here, on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import gpu_probe  # noqa: E402


@pytest.mark.slow
def test_dry_run_passes_and_writes_every_part(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "2"}
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_probe.sh"), "--dry-run", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == set(gpu_probe.PARTS)
    assert all(p["rc"] == 0 and p["status"] in ("done", "skipped") for p in summary.values())
    variants = [r["variant"] for r in summary["student"]["rows"]]
    assert variants[:2] == ["fp32-tf32", "fp32-tf32"] and len(variants) >= 3
    rows = summary["student"]["rows"]
    # On the CPU the FP32 rows are the reference itself, and bfloat16 autocast stays close to it.
    assert all(r["max_abs_dlogit"] == 0.0 and r["argmax_agreement"] == 1.0 for r in rows[:2])
    assert all(r["argmax_agreement"] >= 0.9 for r in rows[2:] if "argmax_agreement" in r)
    assert summary["kd_step"]["kd_over_student"] > 0
    assert {r["mode"] for r in summary["kd_step"]["rows"]} == {"student-only", "kd"}
    (seg,) = summary["segmenter"]["rows"][:1]
    assert seg["timings"]["inference"] > 0 and seg["wall_s"] > 0
    assert "auto picks:" in (tmp_path / "doctor.txt").read_text()


def test_a_part_killed_by_its_timeout_keeps_its_rows_and_fails_the_run(tmp_path: Path) -> None:
    rec = gpu_probe.Recorder(tmp_path, "student", {"patch": 128})
    rec.row(variant="fp32-tf32", ms_per_window=5.0)  # then the timeout struck
    (tmp_path / "rcs.txt").write_text("student 124\n")
    for part in ("kd_step", "segmenter", "engines"):
        gpu_probe.Recorder(tmp_path, part, {}).done()
    assert gpu_probe.summary(tmp_path) == 1
    student = json.loads((tmp_path / "summary.json").read_text())["student"]
    assert student["status"].startswith("killed by its timeout")
    assert student["rows"] == [{"variant": "fp32-tf32", "ms_per_window": 5.0}]


def test_every_part_finished_is_success(tmp_path: Path) -> None:
    for part in gpu_probe.PARTS:
        gpu_probe.Recorder(tmp_path, part, {}).done()
    assert gpu_probe.summary(tmp_path) == 0
