"""Shared fixtures: a real InfluxDB 1.x on a free loopback port, and the demo plant's servers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

INSTALL_HINT = (
    "InfluxDB's server binary 'influxd' is not installed. Install Debian's package: "
    "'sudo apt-get install influxdb' (or run 'make test' as root, which installs it)."
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class InfluxServer:
    """An influxd process with its own directories; can be stopped and started again."""

    def __init__(self, root: Path) -> None:
        binary = shutil.which("influxd")
        if binary is None:
            pytest.fail(INSTALL_HINT, pytrace=False)
        self.binary, self.root = binary, root
        self.port, self.rpc_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = root / "influxdb.conf"
        self.config.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{root / 'meta'}"
[data]
  dir = "{root / 'data'}"
  wal-dir = "{root / 'wal'}"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
""",
            encoding="utf-8",
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.log = root / "influxd.log"

    def start(self, timeout_s: float = 60.0) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "run", "-config", str(self.config)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"influxd exited with {self.process.returncode}; see {self.log}", pytrace=False)
            try:
                if requests.get(f"{self.url}/ping", timeout=1).status_code == 204:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)  # polling readiness, not waiting for luck
        pytest.fail(f"influxd did not answer /ping within {timeout_s} s; see {self.log}", pytrace=False)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def query(self, q: str, db: str = "") -> list[dict[str, Any]]:
        """InfluxQL query; returns the 'series' list of the first statement (may be empty)."""
        reply = requests.post(f"{self.url}/query", params={"q": q, "db": db, "epoch": "ns"}, timeout=30)
        reply.raise_for_status()
        result = reply.json()["results"][0]
        if "error" in result:
            raise AssertionError(f"InfluxQL error for {q!r}: {result['error']}")
        return list(result.get("series", []))

    def create_database(self, name: str) -> None:
        self.query(f'CREATE DATABASE "{name}"')


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    server = InfluxServer(tmp_path_factory.mktemp("influxdb"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_influxdb(tmp_path: Path) -> Iterator[InfluxServer]:
    """An InfluxDB of the test's own, for tests that stop and start it."""
    (tmp_path / "influxdb").mkdir()
    server = InfluxServer(tmp_path / "influxdb")
    server.start()
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
