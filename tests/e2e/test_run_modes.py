"""``edge-agent run --test`` and ``--once`` as an integrator runs them: against the demo plant's
real OPC UA and Modbus servers (``edge-agent plant`` as a process), and against nothing."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import InfluxServer, free_port

AGENT = """\
agent: {{id: first-hour, site: s, workshop: w, buffer: {{path: {store}}}}}
sinks: {sinks}
devices:
  - {{name: press-1, profile: demo-press-modbus, endpoint: "modbus://127.0.0.1:{modbus}", unit_id: 1, line: b,
      timeout: 1s}}
  - {{name: cnc-1, profile: demo-cnc-opcua, endpoint: "opc.tcp://127.0.0.1:{opcua}/demo", params: {{machine: A1}},
      line: a, timeout: 2s}}
"""


def edge_agent(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", *args], cwd=cwd, capture_output=True, text=True, timeout=180, check=False
    )


def write_agent(tmp_path: Path, modbus: int, opcua: int, sinks: str = "[]") -> Path:
    path = tmp_path / "agent.yaml"
    store = tmp_path / "store.sqlite3"
    path.write_text(AGENT.format(store=store, sinks=sinks, modbus=modbus, opcua=opcua), encoding="utf-8")
    return path


def test_run_test_prints_every_decoded_value_and_writes_nothing(plant: tuple[int, int], tmp_path: Path) -> None:
    path = write_agent(tmp_path, *plant)
    done = edge_agent("run", "--test", "-c", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {(line.split()[0], line.split()[1]): line for line in done.stdout.splitlines()[1:] if line.strip()}
    # Every field of both profiles, once each.
    assert {f for d, f in rows if d == "press-1"} == {
        "state",
        "good",
        "rejects",
        "spindle_temp",
        "vibration",
        "power",
        "guard_closed",
    }
    assert {f for d, f in rows if d == "cnc-1"} == {"state", "parts", "rejects", "spindle_temp", "vibration", "power"}
    temp = rows[("press-1", "spindle_temp")].split()
    assert 20 < float(temp[2]) < 120 and temp[3] == "degC" and temp[4] == "good"
    # The source: the registers, their raw words and how they were decoded; the node id.
    assert "input 0..1 (2 registers) unit 1 = 0x" in rows[("press-1", "spindle_temp")]
    assert "(float32 CDAB)" in rows[("press-1", "spindle_temp")]
    assert "s=A1.SpindleTemp" in rows[("cnc-1", "spindle_temp")]
    assert "2 of 2 devices answered" in done.stdout
    assert not (tmp_path / "store.sqlite3").exists(), "--test wrote to the local store"


def test_run_test_names_each_device_that_failed(tmp_path: Path) -> None:
    path = write_agent(tmp_path, free_port(), free_port())
    started = time.monotonic()
    done = edge_agent("run", "--test", "-c", str(path), cwd=tmp_path)
    assert done.returncode == 1
    assert "0 of 2 devices answered" in done.stdout
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAILED")]
    assert [line.split()[1] for line in failed] == ["press-1", "cnc-1"]
    assert all("no " in line and "answer" in line for line in failed), failed
    assert time.monotonic() - started < 170  # bounded: well inside the subprocess deadline


@pytest.mark.influxdb
def test_run_once_polls_once_writes_to_the_sinks_and_exits(
    plant: tuple[int, int], influxdb: InfluxServer, tmp_path: Path
) -> None:
    influxdb.query('DROP DATABASE "once"')
    sinks = f'[{{type: influxdb_v1, url: "{influxdb.url}", database: once}}]'
    path = write_agent(tmp_path, *plant, sinks=sinks)
    done = edge_agent("--log-level", "INFO", "run", "--once", "-c", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "one cycle done" in done.stderr
    (series,) = influxdb.query('SELECT count("value") FROM "raw" WHERE "device" = \'press-1\'', "once")
    assert series["values"][0][1] >= 6
