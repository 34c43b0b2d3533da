"""Collectors against real servers: the demo plant's asyncua and pymodbus servers on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
import pytest

from edge_agent.collectors.batch import QUALITY_GOOD
from edge_agent.collectors.modbus.client import ModbusCollector
from edge_agent.collectors.modbus.profile import ModbusProfile
from edge_agent.collectors.modbus.tcp import TcpLink
from edge_agent.collectors.opcua.client import OpcUaCollector
from edge_agent.collectors.opcua.profile import OpcUaProfile
from edge_agent.collectors.plugin import DeviceUnreachable
from edge_agent.collectors.profile import builtin_profile_dir
from edge_agent.config import load_profiles
from edge_agent.demo.plant import Plant
from edge_agent.demo.servers import DemoServers
from edge_agent.runtime.clock import ScaledClock

PROFILES = load_profiles([builtin_profile_dir()])


def run(coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(coro())


async def started(speed: float = 1.0) -> DemoServers:
    servers = DemoServers(Plant(seed=5), ScaledClock(speed=speed))
    await servers.start()
    return servers


def test_modbus_values_match_the_plant() -> None:
    async def body() -> None:
        servers = await started()
        try:
            profile = PROFILES["demo-press-modbus"]
            assert isinstance(profile, ModbusProfile)
            collector = ModbusCollector(profile, TcpLink("127.0.0.1", servers.modbus_port), 1, servers.clock.now_ns)
            await collector.connect()
            assert len(collector.requests) == 3  # coil 0, holding 0..3, input 0..5
            batch = await collector.collect()
            t = servers.plant_s(int(batch.ts[0]))
            plant = servers.plant
            good, reject = plant.counts("B1", t)
            assert (batch.quality == QUALITY_GOOD).all()
            values = dict(zip([f.name for f in profile.fields], batch.value.tolist(), strict=True))
            assert values["state"] == plant.state("B1", t)
            assert values["good"] == (65_500 + good) & 0xFFFF
            assert values["rejects"] == reject
            assert values["spindle_temp"] == pytest.approx(plant.spindle_temp("B1", t), abs=0.01)
            assert values["power"] == pytest.approx(plant.power_kw("B1", t), abs=0.01)
            assert values["guard_closed"] == (1.0 if plant.state("B1", t) in (1, 2) else 0.0)
            await collector.close()
        finally:
            await servers.stop()

    run(body)


def test_modbus_server_gone_raises_unreachable_then_recovers() -> None:
    async def body() -> None:
        servers = await started()
        port = servers.modbus_port
        profile = PROFILES["demo-energy-meter"]
        assert isinstance(profile, ModbusProfile)
        collector = ModbusCollector(profile, TcpLink("127.0.0.1", port, timeout_s=0.5), 10, servers.clock.now_ns)
        await collector.connect()
        await collector.collect()
        await servers.stop_modbus()
        with pytest.raises(DeviceUnreachable):
            await collector.collect()
        await servers.start_modbus()
        await collector.connect()
        batch = await collector.collect()
        assert batch.value[0] > 0
        await collector.close()
        await servers.stop()

    run(body)


def test_opcua_batched_read_and_subscription_with_source_timestamps() -> None:
    async def body() -> None:
        servers = await started(speed=60.0)  # state changes every few seconds of wall time
        profile = PROFILES["demo-cnc-opcua"]
        assert isinstance(profile, OpcUaProfile)
        collector = OpcUaCollector(profile, servers.opcua_endpoint, {"machine": "A1"}, servers.clock.now_ns)
        try:
            await collector.connect()
            batches = []
            for _ in range(60):
                batches.append(await collector.collect())
                await asyncio.sleep(0.1)
            state = [b.take(b.signal == 0) for b in batches]
            changes = [s for s in state if len(s) > 1]  # a subscription change besides the polled value
            assert changes, "the subscription delivered no state change"
            sim = servers.plant.machines["A1"]
            starts = np.array([servers.to_ns(t) for t in sim.starts])
            change_ts = [int(ts) for s in changes for ts in s.ts[:-1]]
            # Changes after the first carry the plant's transition time (OPC UA keeps 100 ns ticks).
            assert any(np.abs(starts - ts).min() < 1_000 for ts in change_ts)
            last = batches[-1]
            assert len(last) >= 6 and (last.quality == QUALITY_GOOD).all()
        finally:
            await collector.close()
            await servers.stop()

    run(body)


def test_opcua_unknown_namespace_is_a_clear_error() -> None:
    async def body() -> None:
        servers = await started()
        profile = OpcUaProfile(name="x", protocol="opcua", nodes=[{"name": "a", "node": "nsu=urn:nobody;s=A"}])  # type: ignore[list-item]
        collector = OpcUaCollector(profile, servers.opcua_endpoint, {}, servers.clock.now_ns)
        try:
            with pytest.raises(LookupError, match="no namespace 'urn:nobody'"):
                await collector.connect()
        finally:
            await servers.stop()

    run(body)


def test_opcua_recovers_after_a_server_restart() -> None:
    async def body() -> None:
        servers = await started()
        endpoint_port = servers.opcua_port
        profile = PROFILES["demo-cnc-opcua"]
        assert isinstance(profile, OpcUaProfile)
        collector = OpcUaCollector(
            profile, servers.opcua_endpoint, {"machine": "A2"}, servers.clock.now_ns, timeout_s=1.0
        )
        await collector.connect()
        await collector.collect()
        await servers.stop()

        async def poll_until_it_fails() -> None:
            for _ in range(20):
                await collector.collect()
                await asyncio.sleep(0.1)

        with pytest.raises(ConnectionError):
            await poll_until_it_fails()
        servers = DemoServers(Plant(seed=5), servers.clock, opcua_port=endpoint_port)
        await servers.start()
        try:
            await collector.connect()
            batch = await collector.collect()
            assert np.isfinite(batch.value).all()
        finally:
            await collector.close()
            await servers.stop()

    run(body)
