"""What crosses the inference child's process boundary (issue 21): errors as the classes of
``glioedge.errors`` that were raised (item 4: exit codes and job handling are those of the same
error in-process), and the modality rules the daemon loaded (item 5: the child never reads the
rule file again)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest

from glioedge import errors
from glioedge.dicom_io.modality import ModalityRules
from glioedge.errors import GlioedgeError, InputError, VerificationError, exit_code
from glioedge.runtime.daemon.delivery import DeliveryError
from glioedge.runtime.daemon.jobproc import JobProcess, _run_job, error_reply, raised_error
from tests.runtime.daemon.conftest import daemon_config, header_only_instance

ROOT = Path(__file__).resolve().parents[3]
HIERARCHY = sorted((c for c in vars(errors).values()
                    if isinstance(c, type) and issubclass(c, GlioedgeError)), key=lambda c: c.__name__)


def test_the_walk_sees_the_whole_hierarchy() -> None:
    names = {c.__name__ for c in HIERARCHY}
    assert {"GlioedgeError", "InputError", "ModelError", "BackendError", "ConfigError",
            "CheckFailedError", "VerificationError", "MissingDependencyError"} <= names


@pytest.mark.parametrize("cls", HIERARCHY, ids=lambda c: c.__name__)
def test_every_class_of_the_hierarchy_arrives_as_itself(cls: type[GlioedgeError]) -> None:
    sent = cls("what was wrong")
    got = raised_error(error_reply(sent))
    assert type(got) is cls
    assert str(got) == "what was wrong"
    assert exit_code(got) == exit_code(sent)


def test_a_class_from_elsewhere_arrives_as_its_nearest_base_in_the_hierarchy() -> None:
    class SliceGapError(InputError):
        pass

    assert type(raised_error(error_reply(SliceGapError("gap")))) is InputError
    assert type(raised_error(error_reply(DeliveryError("PACS down")))) is GlioedgeError
    assert type(raised_error(error_reply(ValueError("bug")))) is GlioedgeError
    # a reply without the lineage (an older child) still maps by its class name
    assert type(raised_error({"kind": "MissingDependencyError", "message": "m"})) is \
        errors.MissingDependencyError


@pytest.mark.parametrize(("raised", "status"), [
    (errors.VerificationError("engine checksum"), "error"),  # retried, as in-process
    (errors.MissingDependencyError("pip install glioedge[runtime]"), "error"),
    (type("SliceGapError", (InputError,), {})("slice missing"), "input_error"),  # quarantined
])
def test_a_jobs_error_in_the_child_is_handled_as_in_process(tmp_path: Path, raised: Exception,
                                                            status: str) -> None:
    class Segmenter:
        def segment_study(self, datasets: Any, rules: Any = None) -> Any:
            raise raised

    study = header_only_instance(tmp_path / "in.dcm")
    reply = _run_job(Segmenter(), None, {"key": "k", "staging": str(tmp_path / "staging"),
                                         "files": [str(study)], "job_id": 1}, OrderedDict())
    assert reply["status"] == status  # the worker quarantines "input_error", retries "error"
    assert (status == "input_error") == isinstance(raised, InputError)
    if status == "error":
        assert reply["kind"] == type(raised).__name__  # the job_errors{kind} label
        assert type(raised_error(reply)) is type(raised)


def test_a_tampered_bundle_fails_the_child_as_it_fails_in_process(trained_bundle: Path,
                                                                  tmp_path: Path) -> None:
    from glioedge.runtime.segmenter import Segmenter

    bundle = tmp_path / "bundle"
    shutil.copytree(trained_bundle, bundle)
    with (bundle / "model.onnx").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(VerificationError) as in_process:
        Segmenter.from_bundle(bundle)
    jobs = JobProcess(daemon_config(tmp_path, bundle))
    try:
        with pytest.raises(VerificationError) as in_child:
            jobs.start()
    finally:
        jobs.close()
    assert "model.onnx" in str(in_child.value)
    assert exit_code(in_child.value) == exit_code(in_process.value) == 1


def test_the_child_gets_the_rules_the_daemon_loaded_not_the_file(trained_bundle: Path,
                                                                 tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"pin": {"flair": 3}}))
    jobs = JobProcess(daemon_config(tmp_path, trained_bundle, model={"rules": str(rules)}))
    assert jobs.rules == ModalityRules.from_dict({"pin": {"flair": 3}})
    rules.write_text("{ not JSON")  # edited after the daemon loaded it: the child must not care
    try:
        assert jobs.start()["status"] == "ready"
    finally:
        jobs.close()


@pytest.mark.slow
def test_both_daemon_entry_points_exit_alike_on_a_tampered_bundle(trained_bundle: Path,
                                                                   tmp_path: Path) -> None:
    """``glioedge watch`` and ``python -m glioedge.runtime.daemon watch`` share one exit-code
    mapping: a bundle that fails verification is a failed check (1), not bad input (2)."""
    bundle = tmp_path / "bundle"
    shutil.copytree(trained_bundle, bundle)
    with (bundle / "model.onnx").open("ab") as fh:
        fh.write(b"\0")
    (tmp_path / "inbox").mkdir()
    codes = {}
    for entry in ("glioedge.cli", "glioedge.runtime.daemon"):
        out = tmp_path / entry
        done = subprocess.run([sys.executable, "-m", entry, "watch", str(tmp_path / "inbox"),
                               "--bundle", str(bundle), "--out", str(out), "--once"],
                              capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
        assert "model.onnx" in done.stderr, done.stderr[-2000:]
        codes[entry] = done.returncode
    assert codes == {"glioedge.cli": 1, "glioedge.runtime.daemon": 1}
