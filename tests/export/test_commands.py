"""``glioedge export`` and ``glioedge bundle verify`` through ``glioedge.cli.main`` (exit codes:
0 ok, 1 a failed check, 2 bad input or configuration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from glioedge.cli import main
from glioedge.export.triton import parse_pbtxt


def _run(*argv: str) -> int:
    return main(list(argv))


def test_export_then_verify_then_tamper(
    tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    out, repo = tmp_path / "bundle", tmp_path / "triton"
    rc = _run("export", "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--no-fp16",
              "--triton", str(repo), "--et-min-voxels", "100")
    assert rc == 0
    printed = capsys.readouterr().out
    assert "onnxruntime_fp32" in printed and "SHA-256 verified" in printed
    assert parse_pbtxt((repo / "glioedge_student_onnx" / "config.pbtxt").read_text())["input"]
    assert _run("bundle", "verify", str(out)) == 0
    assert _run("export", "--checkpoint", str(tiny_checkpoint), "--out", str(out)) == 2  # bad input
    assert "exists" in caplog.text
    with (out / "model.onnx").open("ab") as f:
        f.write(b"\0")
    assert _run("bundle", "verify", str(out)) == 1  # a verification that does not hold
    assert "SHA-256" in caplog.text


def test_usage_errors_return_2(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    assert _run("export", "--out", str(tmp_path / "x")) == 2
    assert _run("export", "--checkpoint", str(tmp_path)) == 2
    assert "--out is required" in caplog.text


def test_engine_without_tensorrt_fails_with_a_reason(
    tiny_checkpoint: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from glioedge.export.tensorrt import tensorrt_unavailable_reason

    if tensorrt_unavailable_reason() is None:
        pytest.skip("TensorRT and a GPU are present: covered by test_tensorrt.py")
    rc = _run("export", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "b"),
              "--engine")
    assert rc == 2  # a configuration this machine cannot serve, not a failed check
    assert "cannot build a TensorRT engine here" in caplog.text
    assert not (tmp_path / "b").exists()
