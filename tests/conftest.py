"""Shared fixtures: a real InfluxDB 1.x on a free loopback port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.influx_server import InfluxServer, InfluxUnavailable, dead_port, free_port

__all__ = ["InfluxServer", "dead_port", "free_port"]


def _started(root: Path) -> InfluxServer:
    try:
        server = InfluxServer(root)
        server.start()
    except InfluxUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    return server


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    server = _started(tmp_path_factory.mktemp("influxdb"))
    yield server
    server.stop()


@pytest.fixture
def fresh_influxdb(tmp_path: Path) -> Iterator[InfluxServer]:
    """An InfluxDB of the test's own, for tests that stop and start it."""
    (tmp_path / "influxdb").mkdir()
    server = _started(tmp_path / "influxdb")
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _no_proxy_for_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    # The tests talk to loopback servers only; a proxy set in the environment must not interfere.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        if name in os.environ:
            monkeypatch.delenv(name)
