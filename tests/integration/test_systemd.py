"""systemd integration without systemd: the agent process speaks sd_notify to a datagram socket
standing in for systemd's (``$NOTIFY_SOCKET``): READY=1 once running, WATCHDOG=1 pings at half
``$WATCHDOG_USEC``, RELOADING=1 on SIGHUP, STOPPING=1 on SIGTERM. The unit file is checked for the
hardening and lifecycle settings the README promises (systemd-analyze is not available here)."""

from __future__ import annotations

import configparser
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.conftest import InfluxServer
from tests.faults.agent_process import AgentProcess
from tests.faults.counting_server import CountingServer, Unit
from tests.faults.test_faults import DB, agent_config
from tests.influx_server import free_port

UNIT = Path(__file__).parents[2] / "deploy" / "systemd" / "edge-agent.service"


def received(sock: socket.socket, want: str, deadline_s: float = 60.0) -> list[str]:
    """Messages until one contains ``want`` (a generous deadline)."""
    got: list[str] = []
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
        if want in got[-1]:
            return got
    raise AssertionError(f"no {want} from the agent within {deadline_s:g} s; got {got}")


def test_the_agent_notifies_systemd(influxdb: InfluxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(1.0)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    server = CountingServer(free_port(), {1: Unit()})
    server.start()
    try:
        agent = AgentProcess(tmp_path, agent_config(tmp_path, influxdb.url, server.port, [1]))
        agent.start()
        try:
            got = received(sock, "READY=1")
            assert any("STATUS=polling 1 devices" in m for m in got)
            pings = [m for m in received(sock, "WATCHDOG=1") if m == "WATCHDOG=1"]
            pings += [m for m in received(sock, "WATCHDOG=1") if m == "WATCHDOG=1"]
            assert len(pings) >= 2
            assert agent.process is not None
            os.kill(agent.process.pid, signal.SIGHUP)
            received(sock, "RELOADING=1")
            received(sock, "READY=1")
        finally:
            agent.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            received(sock, "STOPPING=1")
            assert agent.process.wait(120) == 0  # type: ignore[union-attr]
    finally:
        server.close()
        influxdb.query(f'DROP DATABASE "{DB}"', DB)
        sock.close()


def test_the_unit_file_is_hardened_and_waits_for_the_drain() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(UNIT)
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["User"] == "edge-agent"
    assert service["Restart"] == "on-failure"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["WatchdogSec"].endswith("s")
    assert int(service["TimeoutStopSec"].removesuffix("s")) > 8  # longer than agent.drain's default
    assert service["ExecStart"].endswith("run -c /etc/edge-agent/agent.yaml")
