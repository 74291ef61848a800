"""The README's main job: ``glioedge demo`` runs the whole product and its SEG is valid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glioedge.cli import main


@pytest.mark.slow
def test_quick_demo_runs_every_part_and_writes_a_valid_seg(tmp_path: Path, capsys) -> None:
    code = main(["demo", "--quick", "--out", str(tmp_path / "demo")])
    assert code == 0
    summary = json.loads((tmp_path / "demo" / "demo_summary.json").read_text())
    # training → checkpoint, export → verified bundle, daemon → SEG + report + QA picture
    assert Path(summary["checkpoint"], "student.safetensors").is_file()
    assert Path(summary["bundle"], "manifest.json").is_file()
    assert summary["daemon_exit_code"] == 0
    for key in ("seg", "report", "qa_png"):
        assert Path(summary[key]).is_file(), key
    if "not installed" not in summary["dciodvfy"]:
        assert summary["dciodvfy"] == "no errors"
    assert set(summary["dice_vs_truth"]) == {"WT", "TC", "ET"}
    assert all(0.0 <= v <= 1.0 for v in summary["dice_vs_truth"].values())
    printed = capsys.readouterr().out
    assert "DICOM-SEG (daemon)" in printed
    assert summary["seg"] in printed
