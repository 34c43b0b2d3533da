"""The demo plant as a process (``edge-agent plant``), as the compose stack runs it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def plant(tmp_path: Path) -> Iterator[tuple[int, int]]:
    modbus, opcua = free_port(), free_port()
    log = (tmp_path / "plant.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "plant", "--modbus-port", str(modbus), "--opcua-port", str(opcua)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while not (listening(modbus) and listening(opcua)):
        assert process.poll() is None, (tmp_path / "plant.log").read_text(encoding="utf-8")
        assert time.monotonic() < deadline, "the demo plant did not open its ports"
        time.sleep(0.1)
    yield modbus, opcua
    process.terminate()
    process.wait(30)
    log.close()
