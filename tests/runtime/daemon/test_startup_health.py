"""``/healthz`` answers "starting" while the daemon loads its model (issue 23, item 9): on a GPU
box the first start builds a TensorRT engine, which takes minutes; a probe that sees nothing
would restart the service in a loop."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from glioedge.errors import BackendError
from glioedge.runtime.daemon import service
from glioedge.runtime.daemon.health import HealthServer, Metrics
from tests.runtime.daemon.conftest import LOOPBACK, daemon_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def test_healthz_is_up_and_starting_while_the_model_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Any] = []
    daemon: service.Daemon

    class LoadsSlowly:
        """The inference child while it builds the engine: then the build fails."""

        def __init__(self, config: Any, **kwargs: Any) -> None:
            pass

        def start(self) -> dict[str, Any]:
            health = daemon.health
            seen.append(None if health is None else health.respond("/healthz"))
            raise BackendError("TensorRT failed to build an engine from model.fp16.onnx")

        def close(self) -> None:
            pass

    monkeypatch.setattr(service, "JobProcess", LoadsSlowly)
    config = daemon_config(tmp_path, tmp_path / "bundle", health={"port": _free_port()})
    daemon = service.Daemon(config)
    with pytest.raises(BackendError):
        daemon.run(once=True)
    ((code, _, body),) = seen
    assert code == 503 and json.loads(body)["status"] == "starting"
    with pytest.raises(OSError):  # and the endpoint went away with the failed start
        socket.create_connection((LOOPBACK, config.health.port), timeout=1).close()


def test_healthz_starting_state_ends_when_the_model_is_loaded() -> None:
    metrics = Metrics()
    server = HealthServer(LOOPBACK, 0, metrics, lambda: ({}, {}))
    metrics.starting = True
    code, _, body = server.respond("/healthz")
    assert code == 503 and json.loads(body)["status"] == "starting"
    metrics.starting = False
    code, _, body = server.respond("/healthz")
    server.stop()
    assert code == 200 and json.loads(body)["status"] == "ok"
