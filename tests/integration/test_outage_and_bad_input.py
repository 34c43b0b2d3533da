"""Outages and bad input: nothing is lost, every problem is said clearly."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from edge_agent.demo.servers import DemoServers
from edge_agent.runtime.agent import Agent
from tests.conftest import InfluxServer, dead_port
from tests.integration.workshop import count_points, influx_sink, run_workshop


def test_influxdb_outage_loses_nothing(fresh_influxdb: InfluxServer, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def during(agent: Agent, servers: DemoServers) -> None:
        await asyncio.sleep(4)
        await asyncio.to_thread(fresh_influxdb.stop)
        await asyncio.sleep(6)
        seen["sink_ok_during_outage"] = agent.forwarders[0].health.ok
        seen["backlog"] = agent.store.points.stats().pending_points
        await asyncio.to_thread(fresh_influxdb.start)
        await asyncio.sleep(5)

    run = asyncio.run(run_workshop(tmp_path, [influx_sink(fresh_influxdb, "outage", tmp_path)], 0, during=during))
    assert seen["sink_ok_during_outage"] is False
    assert seen["backlog"] > 1000
    report = run.agent.health_report()
    store = {k: report["buffer"][k] for k in ("pending_points", "oldest_age_s", "dropped", "set_aside", "damaged")}
    assert store == {"pending_points": 0, "oldest_age_s": 0.0, "dropped": {}, "set_aside": {}, "damaged": []}
    assert report["buffer"]["held_in_memory"] == 0 and report["buffer"]["store_writable"] is True
    # Every point produced is in the database exactly once in effect.
    assert count_points(fresh_influxdb, "outage") == run.agent.points_produced


PROBE_PROFILE = """\
name: probe-press
protocol: modbus
description: the demo press plus a register the device does not have
max_gap: 0
fields:
  - {name: state, table: holding, address: 0, type: uint16, kind: state}
  - {name: missing, table: holding, address: 200, type: uint16}
"""


def test_unreachable_devices_and_error_replies_stall_nothing(
    influxdb: InfluxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "probe.yaml").write_text(PROBE_PROFILE, encoding="utf-8")
    with dead_port() as dead_modbus, dead_port() as dead_opcua:
        _check_unreachable_devices(influxdb, tmp_path, caplog, dead_modbus, dead_opcua)


def _check_unreachable_devices(
    influxdb: InfluxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, dead_modbus: int, dead_opcua: int
) -> None:

    def edit(cfg: dict[str, Any]) -> None:
        modbus = next(d["endpoint"] for d in cfg["devices"] if d["endpoint"].startswith("modbus"))
        cfg["profile_dirs"] = [str(tmp_path / "profiles")]
        cfg["devices"] += [
            {
                "name": "ghost-press",
                "line": "line-c",
                "profile": "demo-press-modbus",
                "unit_id": 1,
                "endpoint": f"modbus://127.0.0.1:{dead_modbus}",
                "timeout": "0.5s",
            },
            {
                "name": "ghost-cnc",
                "line": "line-c",
                "profile": "demo-cnc-opcua",
                "params": {"machine": "A1"},
                "endpoint": f"opc.tcp://127.0.0.1:{dead_opcua}/x",
                "timeout": "0.5s",
            },
            {
                "name": "probe",
                "line": "line-c",
                "profile": "probe-press",
                "unit_id": 1,
                "endpoint": modbus,
            },
        ]

    caplog.set_level(logging.INFO, logger="edge_agent")
    run = asyncio.run(run_workshop(tmp_path, [influx_sink(influxdb, "badinput", tmp_path)], 8.0, edit=edit))
    health = {d["name"]: d for d in run.agent.health_report()["devices"]}
    for ghost in ("ghost-press", "ghost-cnc"):
        assert health[ghost]["connected"] is False and health[ghost]["failures"] >= 2
        warnings = [r for r in caplog.records if r.getMessage().startswith(f"device {ghost} unreachable")]
        assert len(warnings) == 1, "an unreachable device is logged once per change of state"
        assert str(dead_modbus if ghost == "ghost-press" else dead_opcua) in warnings[0].getMessage()
    for name in ("A1", "B1", "probe"):
        assert health[name]["connected"] and health[name]["polls"] > 50
    # The register the device does not have arrives as a bad-quality point, the good one as a value.
    by_signal = {
        s["tags"]["signal"]: s["values"][0][1:]
        for s in influxdb.query(
            'SELECT count("value"), count("value_quality") FROM "raw" WHERE "device" = \'probe\' GROUP BY "signal"',
            "badinput",
        )
    }
    assert by_signal["state"][0] > 50
    assert by_signal["missing"][0] is None and by_signal["missing"][1] > 50
    assert any("device probe answered with errors" in r.getMessage() for r in caplog.records)
    assert count_points(influxdb, "badinput") == run.agent.points_produced


def test_points_influxdb_refuses_go_to_the_rejected_file(
    influxdb: InfluxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = "refusing"
    influxdb.create_database(db)
    # A string "score" makes every float score in this shard a field type conflict (HTTP 400).
    reply = requests.post(
        f"{influxdb.url}/write",
        params={"db": db},
        data=f'anomaly,machine=x score="text" {time.time_ns()}',
        timeout=10,
    )
    assert reply.status_code == 204
    run = asyncio.run(run_workshop(tmp_path, [influx_sink(influxdb, db, tmp_path)], 6.0))
    rejected_file = tmp_path / "rejected.lp"
    lines = [line for line in rejected_file.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    reasons = [line for line in rejected_file.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    report = run.agent.health_report()
    assert lines and all(line.startswith("anomaly,") for line in lines)
    assert all("field type conflict" in r for r in reasons)
    assert report["buffer"]["dropped"] == {"rejected": len(lines)}
    assert report["buffer"]["pending_points"] == 0
    # Everything else arrived; the refused points are accounted for, none lost silently.
    delivered = sum(
        count_points(influxdb, db, f'"{m}"') for m in ("raw", "oee", "agent", "alarm", "kpi", "machine_state")
    )
    assert delivered + len(lines) == run.agent.points_produced
    assert any("refused" in r.getMessage() and str(rejected_file) in r.getMessage() for r in caplog.records)
    # The cloud-adoption KPIs count what the database took, not what it refused.
    kpis = influxdb.query('SELECT "points_acked", "cloud_completeness" FROM "kpi"', db)[0]["values"]
    acked = sum(v[1] for v in kpis if v[1] is not None)
    assert 0 < acked <= delivered, (acked, delivered, len(lines))
    assert all(v[2] is None or v[2] <= 1.0 for v in kpis), kpis
