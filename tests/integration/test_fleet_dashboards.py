"""The Fleet and Enterprise dashboards against a real InfluxDB holding three agents' data (three
workshops of two sites, each a real agent on the demo plant) and a fourth agent that went silent
an hour ago; every panel query runs, and the figures equal totals computed here from the
individual points (Grafana, which cannot run here, is stood in for by substituting its variables)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent import __version__
from edge_agent.config import load_config
from tests.conftest import InfluxServer
from tests.integration.workshop import WorkshopRun, influx_sink, run_workshop
from tests.mosquitto_server import USERS, Mosquitto, Subscriber

DB = "fleet"
REPO = Path(__file__).parents[2]
PLANTS = [("suzhou", "machining", "sz-mach-1"), ("suzhou", "assembly", "sz-asm-1"), ("wuxi", "machining", "wx-mach-1")]


def board(name: str) -> dict[str, Any]:
    return json.loads((REPO / "dashboards" / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def fleet_reader(broker: Mosquitto) -> Iterator[Subscriber]:
    """An independent subscriber to the fleet's agent topics, started before the agents."""
    reader = Subscriber(broker, "plant/+/+/agent/#").start()
    yield reader
    reader.stop()


@pytest.fixture(scope="module")
def fleet(
    influxdb: InfluxServer, broker: Mosquitto, fleet_reader: Subscriber, tmp_path_factory: pytest.TempPathFactory
) -> list[WorkshopRun]:
    runs = []
    for site, workshop, agent in PLANTS:
        tmp = tmp_path_factory.mktemp(agent)

        def edit(cfg: dict[str, Any], site: str = site, workshop: str = workshop, agent: str = agent) -> None:
            cfg["agent"].update({"site": site, "workshop": workshop, "id": agent})
            cfg["kpis"]["every"] = "30s"

        mqtt = {
            "type": "mqtt",
            "url": f"mqtt://127.0.0.1:{broker.port}",
            "username": "edge",
            "password": USERS["edge"],
            "topic_prefix": "plant/",
        }
        sinks = [influx_sink(influxdb, DB, tmp), mqtt]
        runs.append(asyncio.run(run_workshop(tmp, sinks, wall_s=6.0, edit=edit)))
    # A fourth agent that reported once, an hour ago, and then fell silent.
    hour_ago = time.time_ns() - 3600 * 10**9
    tags = f"site=wuxi,workshop=paint,agent=wx-paint-1,version={__version__},config=000000000000"
    influxdb.write(DB, [f"agent,{tags} uptime_s=5,devices_in_scope=3,devices_down=3,buffer_points=10 {hour_ago}"], "ns")
    return runs


def substitute(query: str, runs: list[WorkshopRun], silent_after: str = "2m") -> str:
    start = min(r.start_ns for r in runs) - 2 * 3600 * 10**9
    end = max(r.end_ns for r in runs) + 3600 * 10**9
    return (
        query.replace("$timeFilter", f"time >= {start} AND time <= {end}")
        .replace("$__interval", "1m")
        .replace("$silent_after", silent_after)
        .replace("$site", ".*")
        .replace("$workshop", ".*")
        .replace("$window", "1m")
    )


def test_fleet_panels(fleet: list[WorkshopRun], influxdb: InfluxServer) -> None:
    panels = {p["title"]: p for p in board("fleet")["panels"]}
    counts = [influxdb.query(substitute(t["query"], fleet), DB) for t in panels["Agents 边缘代理"]["targets"]]
    assert [c[0]["values"][0][1] for c in counts] == [4, 3]  # four in the range, three reporting now
    rows = influxdb.query(substitute(panels["Every agent 代理列表"]["targets"][0]["query"], fleet), DB)
    by_agent = {s["tags"]["agent"]: (s["tags"], dict(zip(s["columns"], s["values"][0], strict=True))) for s in rows}
    assert set(by_agent) == {"sz-mach-1", "sz-asm-1", "wx-mach-1", "wx-paint-1"}
    for run in fleet:
        tags, row = by_agent[run.agent.loaded.config.agent.id]
        assert tags["version"] == __version__
        assert tags["config"] == run.agent.loaded.fingerprint() == load_config(run.agent.loaded.path).fingerprint()
        assert row["devices"] == 7 and row["backlog"] is not None and row["uptime_s"] > 0
    assert by_agent["wx-paint-1"][1]["devices_down"] == 3
    hashes = {by_agent[r.agent.loaded.config.agent.id][0]["config"] for r in fleet}
    assert len(hashes) == 3  # each workshop's own settings
    # The reporting timeline: the silent agent has 0 reports in most intervals.
    series = influxdb.query(substitute(panels["Reporting 上报"]["targets"][0]["query"], fleet), DB)
    silent = next(s for s in series if s["tags"]["agent"] == "wx-paint-1")
    assert sum(1 for _, n in silent["values"] if n == 0) > 60
    for title in ("Devices down 设备掉线", "Backlog 积压"):
        found = influxdb.query(substitute(panels[title]["targets"][0]["query"], fleet), DB)
        assert {s["tags"]["agent"] for s in found} == set(by_agent), title


def test_enterprise_panels_are_ratios_of_the_points_sums(fleet: list[WorkshopRun], influxdb: InfluxServer) -> None:
    points = influxdb.query('SELECT * FROM "kpi" GROUP BY "site", "workshop"', DB)
    sums: dict[tuple[str, str], dict[str, float]] = {}
    for s in points:
        key = (s["tags"]["site"], s["tags"]["workshop"])
        for row in s["values"]:
            for column, value in zip(s["columns"], row, strict=True):
                if isinstance(value, float | int) and column != "time":
                    sums.setdefault(key, {}).setdefault(column, 0.0)
                    sums[key][column] += value
    assert len(sums) == 3
    panels = {p["title"]: p for p in board("enterprise")["panels"]}
    table = influxdb.query(substitute(panels["Workshops, this period 本期 车间指标"]["targets"][0]["query"], fleet), DB)
    for s in table:
        key = (s["tags"]["site"], s["tags"]["workshop"])
        row = dict(zip(s["columns"], s["values"][0], strict=True))
        mine = sums[key]
        assert row["networking"] == pytest.approx(mine["devices_seen"] / mine["devices_in_scope"], rel=1e-9)
        assert row["cloud_completeness"] == pytest.approx(mine["points_acked"] / mine["points_produced"], rel=1e-9)
    (whole,) = influxdb.query(substitute(panels["The enterprise 企业"]["targets"][0]["query"], fleet), DB)
    total = {k: sum(m.get(k, 0.0) for m in sums.values()) for k in ("devices_seen", "devices_in_scope")}
    assert whole["values"][0][1] == pytest.approx(total["devices_seen"] / total["devices_in_scope"], rel=1e-9)
    oee = influxdb.query(substitute(panels["OEE by workshop, this period 本期"]["targets"][0]["query"], fleet), DB)
    assert {(s["tags"]["site"], s["tags"]["workshop"]) for s in oee} == set(sums)
    for p in board("enterprise")["panels"]:  # the shifted panels run too (and find last month empty)
        for t in p["targets"]:
            influxdb.query(substitute(t["query"], fleet), DB)


def test_the_fleet_reaches_the_broker_too(
    fleet: list[WorkshopRun], influxdb: InfluxServer, fleet_reader: Subscriber
) -> None:
    """The same agents also stream to one MQTT broker: an independent subscriber sees each agent's
    own topic, with the fleet contract's fields, as many reports as InfluxDB holds."""
    by_agent: dict[str, list[dict[str, Any]]] = {}
    deadline = time.monotonic() + 60
    expected = {agent: _agent_points(influxdb, agent) for _, _, agent in PLANTS}
    while True:
        by_agent = {}
        for topic, payload in fleet_reader.messages():
            by_agent.setdefault(topic, []).append(json.loads(payload))
        counts = {a: len(by_agent.get(f"plant/{s}/{w}/agent/{a}", [])) for s, w, a in PLANTS}
        if counts == expected or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert counts == expected
    for (site, workshop, agent), run in zip(PLANTS, fleet, strict=True):
        last = max(by_agent[f"plant/{site}/{workshop}/agent/{agent}"], key=lambda m: m["timestamp_ms"])
        assert last["version"] == __version__
        assert last["config"] == run.agent.loaded.fingerprint()
        for name in ("uptime_s", "devices_down", "devices_in_scope", "buffer_points"):
            assert name in last, (name, sorted(last))


def _agent_points(influxdb: InfluxServer, agent: str) -> int:
    (series,) = influxdb.query(f'SELECT count("uptime_s") FROM "agent" WHERE "agent" = \'{agent}\'', DB)
    return int(series["values"][0][1])


def test_every_dashboard_ships_with_its_uid() -> None:
    uids = {json.loads(p.read_text(encoding="utf-8"))["uid"] for p in (REPO / "dashboards").glob("*.json")}
    assert uids == {"edge-plant-overview", "edge-fleet", "edge-enterprise"}
