"""Modbus on real buses: a meter and a controller served by pymodbus over Modbus TCP, RTU over
TCP and RTU on a pseudo-terminal pair; merged reads the meter refuses are split with every
readable field arriving; refused ranges survive a restart; texts reach InfluxDB as strings."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.collectors.batch import QUALITY_GOOD
from edge_agent.collectors.modbus.client import ModbusCollector
from edge_agent.collectors.modbus.plugin import ModbusDeviceOptions
from edge_agent.collectors.plugin import CollectorContext, DeviceSpec, plugins
from edge_agent.config import load_config, load_profile
from edge_agent.runtime.agent import Agent
from edge_agent.runtime.clock import ScaledClock
from tests.conftest import InfluxServer, free_port
from tests.integration.meter import CONTROLLER, CONTROLLER_PROFILE, CONTROLLER_UNIT, METER, METER_PROFILE, Bus

METER_UNIT = 2


class Texts:
    """An intern table the test can read back."""

    def __init__(self) -> None:
        self.by_id: dict[int, str] = {}

    def intern(self, text: str) -> int:
        for i, t in self.by_id.items():
            if t == text:
                return i
        self.by_id[len(self.by_id) + 100] = text
        return len(self.by_id) + 99


def profiles(tmp_path: Path) -> tuple[Any, Any]:
    (tmp_path / "meter.yaml").write_text(METER_PROFILE, encoding="utf-8")
    (tmp_path / "controller.yaml").write_text(CONTROLLER_PROFILE, encoding="utf-8")
    return load_profile(tmp_path / "meter.yaml"), load_profile(tmp_path / "controller.yaml")


def collector(profile: Any, endpoint: str, unit: int, context: CollectorContext) -> ModbusCollector:
    spec = DeviceSpec(f"unit-{unit}", endpoint, 0.1, 1.0, ModbusDeviceOptions(unit_id=unit))
    made = plugins()["modbus"].factory(profile, spec, context)
    assert isinstance(made, ModbusCollector)
    return made


def values(c: ModbusCollector, batch: Any, texts: Texts) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f, v, q in zip(c.profile.fields, batch.value.tolist(), batch.quality.tolist(), strict=True):
        assert q == QUALITY_GOOD, (f.name, q, c.last_error)
        out[f.name] = texts.by_id[int(v)] if f.signal_kind == "text" else v
    return out


@pytest.mark.parametrize("transport", ["tcp", "rtutcp", "serial"])
def test_a_meter_and_a_controller_read_exactly_on_every_transport(
    transport: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Float32, uint64, float64, a string and an enum from pymodbus' own encoding; the merged read
    across the meter's unmapped registers is refused, split, and every field arrives in the same poll."""
    meter_profile, controller_profile = profiles(tmp_path)

    async def body() -> None:
        bus = Bus(transport, free_port() if transport != "serial" else 0)
        await bus.start()
        texts = Texts()
        context = CollectorContext(now_ns=time.time_ns, intern_text=texts.intern)
        try:
            meter = collector(meter_profile, bus.endpoint, METER_UNIT, context)
            controller = collector(controller_profile, bus.endpoint, CONTROLLER_UNIT, context)
            if transport != "tcp":  # one line (or RTU gateway): both units share it
                assert meter.link is controller.link
            assert [r.count for r in meter.requests if r.table == "holding"] == [29]  # 0..28, across 8..9
            await meter.connect()
            await controller.connect()
            with caplog.at_level(logging.WARNING):
                got = values(meter, await meter.collect(), texts)
            assert got == pytest.approx(METER)
            assert values(controller, await controller.collect(), texts) == pytest.approx(CONTROLLER)
            said = [r.getMessage() for r in caplog.records if "answered exception" in r.getMessage()]
            assert len(said) == 1, said
            assert "holding 0..28 (29 registers) answered exception 2 (illegal data address)" in said[0]
            assert "max_gap: 0" in said[0]
            assert meter.health()["reads"] == [
                "holding 0..7 (8 registers)",
                "holding 10..17 (8 registers)",
                "holding 20..28 (9 registers)",
                "input 0..1 (2 registers)",
            ]
            # Later polls read the split ranges only, and say nothing more.
            with caplog.at_level(logging.WARNING):
                for _ in range(3):
                    assert values(meter, await meter.collect(), texts) == pytest.approx(METER)
            assert len([r for r in caplog.records if "answered exception" in r.getMessage()]) == 1
            # A restart does not rediscover the refused range: it is planned split from the start.
            again = ModbusCollector(meter_profile, meter.link, METER_UNIT, time.time_ns, context.state, texts.intern)
            assert [r.count for r in again.requests if r.table == "holding"] == [8, 8, 9]
            await meter.close()
        finally:
            await bus.stop()

    asyncio.run(body())


def test_a_field_the_device_does_not_have_is_bad_and_its_neighbours_are_not(tmp_path: Path) -> None:
    """A field at an address the device refuses (exception 2) is marked bad with the range, the
    code's name and a hint; every other field of its merged read arrives."""
    text = METER_PROFILE + "  - {name: ghost, table: holding, address: 9, type: uint16}\n"
    (tmp_path / "meter.yaml").write_text(text, encoding="utf-8")
    profile = load_profile(tmp_path / "meter.yaml")

    async def body() -> None:
        bus = Bus("tcp", free_port())
        await bus.start()
        texts = Texts()
        try:
            meter = collector(
                profile, bus.endpoint, METER_UNIT, CollectorContext(time.time_ns, intern_text=texts.intern)
            )
            await meter.connect()
            batch = await meter.collect()
            names = [f.name for f in meter.profile.fields]
            ghost = names.index("ghost")
            assert batch.quality[ghost] != QUALITY_GOOD
            assert all(q == QUALITY_GOOD for i, q in enumerate(batch.quality.tolist()) if i != ghost)
            assert meter.last_error == (
                "holding 9..9 (1 register) (ghost): exception 2 (illegal data address): the device has no such "
                "register; check the address (0-based) in the profile"
            )
            await meter.close()
        finally:
            await bus.stop()

    asyncio.run(body())


def test_text_readings_reach_influxdb_as_string_fields(influxdb: InfluxServer, tmp_path: Path) -> None:
    """The meter's serial number and status are queryable strings; numbers stay numbers."""
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "meter.yaml").write_text(METER_PROFILE, encoding="utf-8")
    db = "texts"

    async def body() -> None:
        bus = Bus("tcp", free_port())
        await bus.start()
        config = {
            "agent": {"id": "t", "site": "s", "workshop": "w", "buffer": {"path": str(tmp_path / "b.sqlite3")}},
            "profile_dirs": ["profiles"],
            "sinks": [{"type": "influxdb_v1", "url": influxdb.url, "database": db}],
            "devices": [
                {
                    "name": "meter-1",
                    "line": "utilities",
                    "profile": "three-phase-meter",
                    "endpoint": bus.endpoint,
                    "unit_id": METER_UNIT,
                    "poll_interval": "200ms",
                }
            ],
        }
        path = tmp_path / "agent.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        agent = Agent(load_config(path), ScaledClock(speed=1.0))
        task = asyncio.create_task(agent.run(drain_s=30))
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if await asyncio.to_thread(_serials, influxdb, db):
                    break
                await asyncio.sleep(0.5)
        finally:
            agent.stop()
            await task
            await bus.stop()

    asyncio.run(body())
    assert set(_serials(influxdb, db)) == {METER["serial"]}
    status = influxdb.query("SELECT last(text) FROM raw WHERE signal = 'status'", db)
    assert status[0]["values"][0][1] == "ok"
    volts = influxdb.query("SELECT last(value) FROM raw WHERE signal = 'voltage_l1'", db)
    assert volts[0]["values"][0][1] == METER["voltage_l1"]
    influxdb.query(f'DROP DATABASE "{db}"', db)


def _serials(influxdb: InfluxServer, db: str) -> list[str]:
    try:
        series = influxdb.query("SELECT text FROM raw WHERE signal = 'serial'", db)
    except Exception:
        return []
    return [row[1] for s in series for row in s["values"]]


def test_every_unit_behind_a_gateway_polls_again_when_one_of_them_reconnects(tmp_path: Path) -> None:
    """Two units share one connection to a gateway that goes away long enough for both to back off
    to the longest delay (4 s), then returns. The unit whose backoff ends first reconnects; the
    other polls again at once, before its own backoff would have ended (it stops waiting when the
    shared connection is made again). Checked by order on one clock, not by a duration."""
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "meter.yaml").write_text(METER_PROFILE, encoding="utf-8")
    (tmp_path / "profiles" / "controller.yaml").write_text(CONTROLLER_PROFILE, encoding="utf-8")
    port = free_port()
    seen: dict[str, Any] = {}

    async def body() -> None:
        bus = Bus("tcp", port)
        await bus.start()
        devices = [
            {"name": n, "line": "l", "profile": p, "endpoint": bus.endpoint, "unit_id": u, "connection": "shared"}
            | {"poll_interval": "100ms", "timeout": "500ms"}
            for n, p, u in (("meter", "three-phase-meter", METER_UNIT), ("press", "machine-controller", 3))
        ]
        config = {
            "agent": {"id": "t", "site": "s", "workshop": "w", "buffer": {"path": str(tmp_path / "b.sqlite3")}},
            "profile_dirs": ["profiles"],
            "sinks": [],
            "devices": devices,
        }
        path = tmp_path / "agent.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        agent = Agent(load_config(path), ScaledClock(speed=1.0))
        task = asyncio.create_task(agent.run(drain_s=1))
        health = agent.health
        try:
            await until(lambda: all(h.polls > 5 for h in health), "both units polling")
            await bus.stop()
            await until(lambda: all(h.failures >= 5 for h in health), "both units backing off", 120)

            def apart() -> bool:
                # Both waiting, their retries at least 1.5 s apart and the first still 1 s away.
                at = sorted(h.retry_at_monotonic_ns for h in health)
                now = time.monotonic_ns()
                return at[0] > now + 1_000_000_000 and at[1] - at[0] > 1_500_000_000

            await until(apart, "the two retries far enough apart", 240, step=0.005)
            retry_at = [h.retry_at_monotonic_ns for h in health]
            polls = [h.polls for h in health]
            bus = Bus("tcp", port)
            await bus.start()
            back: dict[int, int] = {}

            def recovered() -> bool:
                for i, h in enumerate(health):
                    if h.polls > polls[i]:
                        back.setdefault(i, time.monotonic_ns())
                return len(back) == len(health)

            await until(recovered, "both units polling again", step=0.005)
            seen.update(retry_at=retry_at, back=back)
        finally:
            agent.stop()
            await task
            await bus.stop()

    asyncio.run(body())
    later = max(range(2), key=lambda i: seen["retry_at"][i])
    assert seen["back"][later] < seen["retry_at"][later], "the second unit waited out its own backoff"
    lead = (seen["retry_at"][later] - seen["back"][later]) / 1e9
    print(f"gateway back: the second unit polled again {lead:.2f} s before its own backoff ended")


async def until(condition: Any, what: str, deadline_s: float = 60.0, step: float = 0.05) -> None:
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline_s:g} s: {what}")
        await asyncio.sleep(step)
