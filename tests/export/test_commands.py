"""``glioedge export`` and ``glioedge bundle verify`` through argparse, as cli.py wires them."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from glioedge.export.commands import add_bundle_parser, add_export_parser
from glioedge.export.triton import parse_pbtxt


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glioedge")
    sub = parser.add_subparsers(dest="command", required=True)
    add_export_parser(sub)
    add_bundle_parser(sub)
    return parser


def _run(*argv: str) -> int:
    args = _parser().parse_args(list(argv))
    return args.func(args)


def test_export_then_verify_then_tamper(
    tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, repo = tmp_path / "bundle", tmp_path / "triton"
    rc = _run("export", "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--no-fp16",
              "--triton", str(repo), "--et-min-voxels", "100")
    assert rc == 0
    printed = capsys.readouterr().out
    assert "onnxruntime_fp32" in printed and "SHA-256 verified" in printed
    assert parse_pbtxt((repo / "glioedge_student_onnx" / "config.pbtxt").read_text())["input"]
    assert _run("bundle", "verify", str(out)) == 0
    assert _run("export", "--checkpoint", str(tiny_checkpoint), "--out", str(out)) == 1
    assert "exists" in capsys.readouterr().err
    with (out / "model.onnx").open("ab") as f:
        f.write(b"\0")
    assert _run("bundle", "verify", str(out)) == 1
    assert "SHA-256" in capsys.readouterr().err


def test_usage_errors_return_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert _run("export", "--out", str(tmp_path / "x")) == 2
    assert _run("export", "--checkpoint", str(tmp_path)) == 2
    assert "--out is required" in capsys.readouterr().err


def test_engine_without_tensorrt_fails_with_a_reason(
    tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from glioedge.export.tensorrt import tensorrt_unavailable_reason

    if tensorrt_unavailable_reason() is None:
        pytest.skip("TensorRT and a GPU are present: covered by test_tensorrt.py")
    rc = _run("export", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "b"),
              "--engine")
    assert rc == 1
    assert "cannot build a TensorRT engine here" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
