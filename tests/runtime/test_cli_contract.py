"""One exit-code contract for every ``glioedge`` sub-command, through ``glioedge.cli.main``.

0 success; 1 a check ran and did not hold (parity, bundle verification, a failed or quarantined
job under ``watch --once``); 2 bad input or configuration. Bad input never ends in a traceback:
the message is one line naming what was wrong.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from glioedge.cli import main


@dataclass(frozen=True)
class Case:
    """One row: argv built from the fixtures' paths, the exit code and a fragment of the message."""

    name: str
    argv: Callable[[dict[str, Path]], list[str]]
    code: int
    says: str = ""


@pytest.fixture(autouse=True)
def _restore_logging(restore_logging: None) -> None:
    """Every row: ``watch``/``receive`` install their own log handlers (see the conftest)."""


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's usage errors (and --help) exit through SystemExit
        return int(exc.code or 0)


# Rows that need no model: bad input or configuration, for every sub-command.
BAD_INPUT = [
    Case("no command", lambda p: [], 2),
    Case("unknown command", lambda p: ["frobnicate"], 2),
    Case("demo: --out is a file", lambda p: ["demo", "--quick", "--out", str(p["file"])], 2,
         "Not a directory"),
    Case("synth: --shape not numbers", lambda p: ["synth", "--out", str(p["tmp"] / "s"),
                                                  "--shape", "ab"], 2, "--shape"),
    Case("synth: --cases not an int", lambda p: ["synth", "--out", str(p["tmp"]), "--cases", "x"], 2),
    Case("train: bad --patch", lambda p: ["train", "--data", str(p["tmp"]), "--out",
                                          str(p["tmp"] / "r"), "--patch", "32,abc"], 2, "--patch"),
    Case("train: two --patch values", lambda p: ["train", "--data", str(p["tmp"]), "--out",
                                                 str(p["tmp"] / "r"), "--patch", "32,32"], 2, "--patch"),
    Case("train: unknown modality", lambda p: ["train", "--data", str(p["tmp"]), "--out",
                                               str(p["tmp"] / "r"), "--student-modalities", "dwi"],
         2, "dwi"),
    Case("train: --resume without a checkpoint", lambda p: ["train", "--data", str(p["tmp"]), "--out",
                                                            str(p["tmp"] / "r"), "--resume"],
         2, "--resume: no checkpoint"),
    Case("train: no data", lambda p: ["train", "--data", str(p["tmp"] / "absent"), "--out",
                                      str(p["tmp"] / "r")], 2, "absent"),
    Case("export: neither source", lambda p: ["export"], 2, "--checkpoint"),
    Case("export: --out missing", lambda p: ["export", "--checkpoint", str(p["tmp"])], 2, "--out"),
    Case("export: no checkpoint there", lambda p: ["export", "--checkpoint", str(p["tmp"] / "absent"),
                                                   "--out", str(p["tmp"] / "b")], 2, "absent"),
    Case("bundle: no sub-command", lambda p: ["bundle"], 2),
    Case("bundle verify: not a bundle", lambda p: ["bundle", "verify", str(p["tmp"])], 2, "manifest"),
    Case("bundle sign: no key file", lambda p: ["bundle", "sign", str(p["tmp"]), "--key",
                                                str(p["tmp"] / "absent.pem")], 2, "absent.pem"),
    Case("bundle keygen: key exists", lambda p: ["bundle", "keygen", str(p["file"])], 2, "exists"),
    Case("segment: no bundle there", lambda p: ["segment", str(p["tmp"]), "--bundle",
                                                str(p["tmp"] / "absent"), "--out", str(p["tmp"] / "o")],
         2, "absent"),
    Case("segment: bad --backend", lambda p: ["segment", str(p["tmp"]), "--bundle", str(p["tmp"]),
                                              "--out", str(p["tmp"]), "--backend", "gpu9000"], 2),
    Case("watch: no inbox", lambda p: ["watch", "--out", str(p["tmp"] / "o"), "--bundle",
                                       str(p["tmp"])], 2, "inbox"),
    Case("watch: config file absent", lambda p: ["watch", str(p["tmp"]), "--config",
                                                 str(p["tmp"] / "absent.toml")], 2, "absent.toml"),
    Case("receive: no inbox", lambda p: ["receive"], 2, "inbox"),
    Case("receive: --port not an int", lambda p: ["receive", "--inbox", str(p["tmp"]), "--port", "x"], 2),
    Case("doctor: bad --device", lambda p: ["doctor", "--device", "gpu7"], 2, "gpu7"),
    Case("quality: no sub-command", lambda p: ["quality"], 2),
    Case("quality calibrate: no held-out folder", lambda p: ["quality", "calibrate", str(p["tmp"] / "absent"),
                                                             "--bundle", str(p["tmp"])], 2, "absent"),
    Case("jobs: no job store there", lambda p: ["jobs", "--state", str(p["tmp"] / "absent")], 2,
         "no job store"),
    Case("retry: no job store there", lambda p: ["retry", "7", "--state", str(p["tmp"] / "absent")], 2,
         "no job store"),
    Case("retry: job not a number", lambda p: ["retry", "seven", "--state", str(p["tmp"])], 2),
    Case("purge: no age given", lambda p: ["purge", "--state", str(p["tmp"])], 2, "--older-than"),
    Case("purge: bad age", lambda p: ["purge", "--state", str(p["tmp"]), "--older-than", "soon"], 2,
         "'soon'"),
    Case("evaluate: no reference folder", lambda p: ["evaluate", "--pred", str(p["tmp"]), "--truth",
                                                     str(p["tmp"] / "absent"), "--out", str(p["tmp"] / "o")],
         2, "absent"),
    Case("evaluate: bad --nsd-tolerance", lambda p: ["evaluate", "--pred", str(p["tmp"]), "--truth",
                                                     str(p["tmp"]), "--out", str(p["tmp"] / "o"),
                                                     "--nsd-tolerance", "-1"], 2, "--nsd-tolerance"),
]


@pytest.mark.parametrize("case", BAD_INPUT, ids=lambda c: c.name)
def test_bad_input_exits_2_with_a_message_and_no_traceback(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    file = tmp_path / "a_file"
    file.write_text("not a folder")
    code = _run(case.argv({"tmp": tmp_path, "file": file}))
    out = capsys.readouterr()
    text = out.out + out.err + caplog.text
    assert code == case.code, text
    assert "Traceback" not in text
    assert case.says in text


def test_every_sub_command_has_a_row() -> None:
    from glioedge.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    rows = {c.argv({"tmp": Path("t"), "file": Path("f")})[:1][0] for c in BAD_INPUT
            if c.argv({"tmp": Path("t"), "file": Path("f")})}
    assert set(sub.choices) <= rows | {"frobnicate"}, set(sub.choices) - rows


# Rows that need the session's bundle and study: success, failed checks, bad input.
@pytest.fixture(scope="module")
def paths(trained_checkpoint: Path, trained_bundle: Path, synthetic_study: Path,
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli-contract")
    tampered = root / "tampered"
    shutil.copytree(trained_bundle, tampered)
    with (tampered / "model.onnx").open("ab") as f:
        f.write(b"\0")
    empty = root / "empty_study"
    empty.mkdir()
    broken_inbox = root / "broken_inbox"
    shutil.copytree(synthetic_study / "t1ce", broken_inbox / "study" / "t1ce")  # no FLAIR
    return {"ckpt": trained_checkpoint, "bundle": trained_bundle, "study": synthetic_study,
            "tampered": tampered, "empty": empty, "tmp": root, "broken_inbox": broken_inbox}


WITH_MODEL = [
    Case("bundle verify: ok", lambda p: ["bundle", "verify", str(p["bundle"])], 0),
    Case("bundle verify: signature required, no key named", lambda p: [
        "bundle", "verify", str(p["bundle"]), "--require-signature"], 2, "--public-key"),
    Case("segment: signature required, no key named", lambda p: [
        "segment", str(p["study"]), "--bundle", str(p["bundle"]), "--out", str(p["tmp"] / "o"),
        "--require-signature"], 2, "--trusted-key"),
    Case("bundle verify: altered file", lambda p: ["bundle", "verify", str(p["tampered"])], 1, "SHA-256"),
    Case("segment: ok", lambda p: ["segment", str(p["study"]), "--bundle", str(p["bundle"]), "--out",
                                   str(p["tmp"] / "seg_ok")], 0),
    Case("segment: altered bundle", lambda p: ["segment", str(p["study"]), "--bundle", str(p["tampered"]),
                                               "--out", str(p["tmp"] / "seg_t")], 1, "verification"),
    Case("segment: no DICOM in the study", lambda p: ["segment", str(p["empty"]), "--bundle",
                                                      str(p["bundle"]), "--out", str(p["tmp"] / "o")],
         2, "empty_study"),
    Case("export: parity worse than the threshold", lambda p: [
        "export", "--checkpoint", str(p["ckpt"]), "--out", str(p["tmp"] / "parity"), "--no-fp16",
        "--min-agreement", "1.5"], 1, "does not match PyTorch"),
    Case("export: --out exists", lambda p: ["export", "--checkpoint", str(p["ckpt"]), "--out",
                                            str(p["bundle"])], 2, "exists"),
    Case("watch --once: nothing to do", lambda p: [
        "watch", str(p["empty"]), "--bundle", str(p["bundle"]), "--out", str(p["tmp"] / "wo"),
        "--once", "--quiet-time", "0", "--log-format", "text"], 0),
    Case("watch --once: a study is quarantined", lambda p: [
        "watch", str(p["broken_inbox"]), "--bundle", str(p["bundle"]), "--out", str(p["tmp"] / "wb"),
        "--once", "--quiet-time", "0", "--max-wait", "0.1", "--log-format", "text"], 1),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", WITH_MODEL, ids=lambda c: c.name)
def test_checks_and_success(case: Case, paths: dict[str, Path], capsys: pytest.CaptureFixture[str],
                            caplog: pytest.LogCaptureFixture) -> None:
    code = _run(case.argv(paths))
    out = capsys.readouterr()
    text = out.out + out.err + caplog.text
    assert code == case.code, text[-3000:]
    assert "Traceback" not in text
    assert case.says in text
