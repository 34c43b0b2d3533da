"""A real InfluxDB 1.x server (Debian's influxd) on a free loopback port, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests


class InfluxUnavailable(RuntimeError):
    """influxd is missing or did not start."""


INSTALL_HINT = (
    "InfluxDB's server binary 'influxd' is not installed. Install Debian's package: "
    "'sudo apt-get install influxdb' (or run 'make test' as root, which installs it)."
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def dead_port() -> Iterator[int]:
    """A loopback port where nothing listens, held for the block so nothing else takes it.

    A port from :func:`free_port` that stays closed can still "answer": Linux may pick that same
    port as the source of an outgoing connection to it, and the socket then connects to itself and
    echoes every request back. Holding it bound (not listening) refuses connections and keeps
    the port out of the ephemeral pool.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


class InfluxServer:
    """An influxd process with its own directories; can be stopped and started again."""

    def __init__(self, root: Path, auth: bool = False) -> None:
        binary = shutil.which("influxd")
        if binary is None:
            raise InfluxUnavailable(INSTALL_HINT)
        self.binary, self.root = binary, root
        self.port, self.rpc_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = root / "influxdb.conf"
        self.config.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{root / "meta"}"
[data]
  dir = "{root / "data"}"
  wal-dir = "{root / "wal"}"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
  auth-enabled = {"true" if auth else "false"}
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
""",
            encoding="utf-8",
        )
        self.process: subprocess.Popen[bytes] | None = None
        #: With ``auth``: the admin user made at the first start (InfluxDB allows that one without a login).
        self.admin: tuple[str, str] | None = ("admin", "admin-" + root.name) if auth else None
        self._admin_made = False
        self.log = root / "influxd.log"

    def start(self, timeout_s: float = 60.0) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([self.binary, "run", "-config", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise InfluxUnavailable(f"influxd exited with {self.process.returncode}; see {self.log}")
            try:
                if requests.get(f"{self.url}/ping", timeout=1).status_code == 204:
                    self._make_admin()
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)  # polling readiness, not waiting for luck
        raise InfluxUnavailable(f"influxd did not answer /ping within {timeout_s} s; see {self.log}")

    def _make_admin(self) -> None:
        if self.admin is None or self._admin_made:
            return
        user, password = self.admin
        q = f"CREATE USER \"{user}\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES"
        requests.post(f"{self.url}/query", data={"q": q}, timeout=30).raise_for_status()
        self._admin_made = True

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
        reply = requests.post(
            f"{self.url}/query", params={"db": db, "epoch": "ns"}, data={"q": q}, auth=self.admin, timeout=30
        )
        reply.raise_for_status()
        result = reply.json()["results"][0]
        if "error" in result:
            raise AssertionError(f"InfluxQL error for {q!r}: {result['error']}")
        return list(result.get("series", []))

    def create_database(self, name: str) -> None:
        self.query(f'CREATE DATABASE "{name}"')

    def write(self, db: str, lines: list[str], precision: str = "s") -> None:
        """Line protocol into ``db`` (created when missing), timestamps in ``precision``."""
        self.create_database(db)
        reply = requests.post(
            f"{self.url}/write",
            params={"db": db, "precision": precision},
            data="\n".join(lines).encode(),
            auth=self.admin,
            timeout=30,
        )
        assert reply.status_code == 204, reply.text
