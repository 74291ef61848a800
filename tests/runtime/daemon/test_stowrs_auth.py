"""STOW-RS with authentication: HTTP basic against a real Orthanc with authentication turned on;
a bearer token against a small real HTTP server of this test (Orthanc's core has no bearer
tokens; the server checks the ``Authorization`` header and answers like a STOW-RS endpoint).
Secrets come from the config or an environment variable and never reach a message or the
inference process's command line.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pydicom
import pytest

from glioedge.errors import ConfigError
from glioedge.runtime.daemon.config import load_config
from glioedge.runtime.daemon.delivery import DeliveryError, destinations
from tests.runtime.daemon.conftest import DICOMWEB_PLUGIN, LOOPBACK, Orthanc

SECRET = "s3cret-Pa55"
TOKEN = "tok-0123456789abcdef"


@pytest.fixture
def output_dir(tmp_path: Path, synthetic_study: Path) -> Path:
    """A study output folder whose ``seg.dcm`` is one instance of the synthetic study (what the
    destination sends is any DICOM object; a SEG would need the model)."""
    out = tmp_path / "out" / "1.2.3"
    out.mkdir(parents=True)
    shutil.copy(sorted(synthetic_study.rglob("*.dcm"))[0], out / "seg.dcm")
    return out


@pytest.fixture
def secured_orthanc(orthanc_factory: Callable[..., Orthanc]) -> Orthanc:
    if not DICOMWEB_PLUGIN.exists():
        pytest.skip(f"Orthanc's DICOMweb plugin {DICOMWEB_PLUGIN} is missing (Debian orthanc-dicomweb)")
    return orthanc_factory(users={"glioedge": SECRET}).start()


def _destination(**delivery: object) -> object:
    # the test servers listen on loopback over plain HTTP: the site's risk key, said explicitly
    delivery.setdefault("stowrs_allow_plaintext_credentials", True)
    config = load_config(None, {f"delivery.{k}": v for k, v in delivery.items()})
    (dest,) = destinations(config.delivery).values()
    return dest


def test_basic_auth_against_orthanc_password_from_the_environment(
        secured_orthanc: Orthanc, output_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sop = str(pydicom.dcmread(output_dir / "seg.dcm", stop_before_pixels=True).SOPInstanceUID)
    url = secured_orthanc.dicomweb
    monkeypatch.setenv("GLIOEDGE_STOW_PASSWORD", SECRET)
    _destination(stowrs=[url], stowrs_username="glioedge",
                 stowrs_password_env="GLIOEDGE_STOW_PASSWORD").send(output_dir)
    assert secured_orthanc.sop_uids("MR") == [sop]

    for wrong in ({"stowrs_username": "glioedge", "stowrs_password": "wrong"}, {}):
        with pytest.raises(DeliveryError) as info:
            _destination(stowrs=[url], **wrong).send(output_dir)
        message = str(info.value)
        assert "authentication refused (HTTP 401 Unauthorized)" in message, message
        assert SECRET not in message and "wrong" not in message.replace("wrong or missing", "")


def test_password_env_unset_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLIOEDGE_NO_SUCH_VAR", raising=False)
    with pytest.raises(ConfigError, match="GLIOEDGE_NO_SUCH_VAR"):
        _destination(stowrs=["http://127.0.0.1:9/dicom-web"], stowrs_username="u",
                     stowrs_password_env="GLIOEDGE_NO_SUCH_VAR")
    with pytest.raises(ConfigError, match="not both"):
        load_config(None, {"delivery.stowrs_username": "u", "delivery.stowrs_token": "t"})


def test_secrets_stay_out_of_repr_and_the_inference_process_config() -> None:
    config = load_config(None, {"delivery.stowrs_username": "u", "delivery.stowrs_password": SECRET,
                                "delivery.stowrs": ["https://127.0.0.1:9/dicom-web"]})
    assert SECRET not in repr(config) and SECRET not in repr(destinations(config.delivery))
    assert SECRET not in json.dumps(config.to_dict(redact=True))  # what jobproc passes on argv
    assert config.to_dict()["delivery"]["stowrs_password"] == SECRET


class _StowServer:
    """A real HTTP server answering ``POST .../studies`` like STOW-RS when the bearer matches."""

    def __init__(self, token: str) -> None:
        self.seen: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.seen.append(self.headers.get("Authorization", ""))
                ok = self.headers.get("Authorization") == f"Bearer {token}"
                body = b"{}" if ok else b""
                self.send_response(200 if ok else 401)
                if not ok:
                    self.send_header("WWW-Authenticate", 'Bearer realm="stow"')
                self.send_header("Content-Type", "application/dicom+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.server.server_address[1]}/dicom-web"


@pytest.fixture
def stow_server() -> Iterator[_StowServer]:
    server = _StowServer(TOKEN)
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_bearer_token_from_the_environment(stow_server: _StowServer, output_dir: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIOEDGE_STOW_TOKEN", TOKEN)
    _destination(stowrs=[stow_server.url], stowrs_token_env="GLIOEDGE_STOW_TOKEN").send(output_dir)
    assert stow_server.seen == [f"Bearer {TOKEN}"]
    with pytest.raises(DeliveryError) as info:
        _destination(stowrs=[stow_server.url], stowrs_token="not-the-token").send(output_dir)
    message = str(info.value)
    assert "authentication refused (HTTP 401 Unauthorized)" in message and "bearer token" in message
    assert "not-the-token" not in message and TOKEN not in message


def test_credentials_over_plain_http_are_refused_unless_the_risk_is_accepted(
        stow_server: _StowServer, output_dir: Path) -> None:
    for secret in ({"stowrs_username": "glioedge", "stowrs_password": SECRET},
                   {"stowrs_token": TOKEN}):
        overrides = {"delivery.stowrs": [stow_server.url], **{f"delivery.{k}": v for k, v in secret.items()}}
        with pytest.raises(ConfigError, match="stowrs_allow_plaintext_credentials") as info:
            load_config(None, overrides)
        assert SECRET not in str(info.value) and TOKEN not in str(info.value)
        https = {**overrides, "delivery.stowrs": [stow_server.url.replace("http://", "https://")]}
        assert load_config(None, https)
    assert stow_server.seen == []  # nothing was sent in clear text
    assert load_config(None, {"delivery.stowrs": [stow_server.url]})  # no credentials: allowed
    _destination(stowrs=[stow_server.url], stowrs_token=TOKEN,
                 stowrs_allow_plaintext_credentials=True).send(output_dir)
    assert stow_server.seen == [f"Bearer {TOKEN}"]


def test_the_inference_child_environment_holds_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real spawn path (``JobProcess.start``) with a child that reports the environment it got:
    the STOW-RS secrets (by whatever name ``*_env`` gives them) and other secrets of the daemon's
    environment are not there; what Python and the back-ends need is."""
    import sys

    from glioedge.runtime.daemon.jobproc import JobProcess

    monkeypatch.setenv("SITE_STOW_PASSWORD", SECRET)
    monkeypatch.setenv("CUDA_SITE_TOKEN", TOKEN)  # an allowlisted prefix, named as a secret below
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-" + SECRET)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("FREESURFER_HOME", "/opt/freesurfer")  # passed on by [model] pass_env
    config = load_config(None, {"model.pass_env": ["FREESURFER_HOME"], "delivery.stowrs_username": "u",
                                "delivery.stowrs_password_env": "SITE_STOW_PASSWORD",
                                "delivery.stowrs": ["https://pacs.example/dicom-web"]})
    reporter = ("import json, os, sys; print(json.dumps({'status': 'ready', 'env': dict(os.environ)}),"
                " flush=True); sys.stdin.read()")

    monkeypatch.setattr(JobProcess, "command", [sys.executable, "-c", reporter])

    for name, config_ in (("password", config),
                          ("token", load_config(None, {"delivery.stowrs_token_env": "CUDA_SITE_TOKEN"}))):
        child = JobProcess(config_)
        try:
            env = child.start()["env"]
        finally:
            child.close()
        values = "\n".join(env.values())
        assert SECRET not in values, name
        assert "AWS_SECRET_ACCESS_KEY" not in env and "SITE_STOW_PASSWORD" not in env
        assert env.get("PATH") and env.get("OMP_NUM_THREADS") == "1"
        assert (env.get("FREESURFER_HOME") == "/opt/freesurfer") == (name == "password")
        if name == "token":
            assert "CUDA_SITE_TOKEN" not in env  # named as a secret: dropped despite its prefix
