"""OPC UA against asyncua's server: reads chunked to the server's MaxNodesPerRead (1,000 nodes,
limit 100, every value arrives), an array node reported as such, a deadband honoured by the
server, and recovery after a restart that moves the namespace to another index (the time from
the server accepting sessions to the first new value is printed, not asserted)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from asyncua import Server, ua

from edge_agent.collectors.opcua.client import OpcUaCollector
from edge_agent.collectors.opcua.plugin import OpcUaDeviceOptions
from edge_agent.collectors.plugin import CollectorContext, DeviceSpec, plugins
from edge_agent.config import load_config, load_profile
from edge_agent.runtime.agent import Agent
from edge_agent.runtime.clock import ScaledClock
from tests.influx_server import free_port
from tests.integration.test_modbus_bus import until

NAMESPACE = "urn:test:big-plant"
N = 1000


async def big_server(port: int, max_per_read: int = 100, filler_namespaces: int = 0) -> tuple[Server, dict[str, Any]]:
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/big")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    for k in range(filler_namespaces):  # moves our namespace to another index
        await server.register_namespace(f"urn:test:filler-{k}")
    ns = await server.register_namespace(NAMESPACE)
    limit = server.get_node(ua.NodeId(11705, 0))
    await limit.write_value(ua.Variant(max_per_read, ua.VariantType.UInt32))
    folder = await server.nodes.objects.add_object(ua.NodeId("Big", ns), ua.QualifiedName("Big", ns))
    nodes: dict[str, Any] = {}
    for i in range(N):
        nodes[f"v{i}"] = await folder.add_variable(ua.NodeId(f"V{i}", ns), ua.QualifiedName(f"V{i}", ns), float(i))
    nodes["array"] = await folder.add_variable(ua.NodeId("Array", ns), ua.QualifiedName("Array", ns), [1.0, 2.0, 3.0])
    nodes["level"] = await folder.add_variable(ua.NodeId("Level", ns), ua.QualifiedName("Level", ns), 21.0)
    await nodes["level"].set_writable()
    await server.start()
    return server, nodes


def profile_text() -> str:
    nodes = [{"name": f"v{i}", "node": f"nsu={NAMESPACE};s=V{i}"} for i in range(N)]
    nodes.append({"name": "array", "node": f"nsu={NAMESPACE};s=Array"})
    nodes.append(
        {
            "name": "level",
            "node": f"nsu={NAMESPACE};s=Level",
            "subscribe": True,
            "sampling_interval": "50ms",
            "queue_size": 10,
            "deadband": {"type": "absolute", "value": 0.5},
        }
    )
    return yaml.safe_dump({"name": "big-machine", "protocol": "opcua", "nodes": nodes})


def test_reads_fit_the_server_limit_and_every_value_arrives(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_text(profile_text(), encoding="utf-8")
    profile = load_profile(tmp_path / "big.yaml")
    port = free_port()

    async def body() -> None:
        server, nodes = await big_server(port)
        try:
            spec = DeviceSpec("big", f"opc.tcp://127.0.0.1:{port}/big", 1.0, 10.0, OpcUaDeviceOptions())
            c = plugins()["opcua"].factory(profile, spec, CollectorContext(time.time_ns, data_dir=str(tmp_path)))
            assert isinstance(c, OpcUaCollector)
            await c.connect()
            assert c.health()["max_nodes_per_read"] == 100
            sizes: list[int] = []
            read = c._client.read_attributes

            async def counted(nodes: list[Any]) -> Any:
                sizes.append(len(nodes))
                return await read(nodes)

            c._client.read_attributes = counted
            batch = await c.collect()
            assert max(sizes) <= 100 and sum(sizes) == N + 2
            polled = batch.value[-(N + 2) :]
            assert polled[:N].tolist() == [float(i) for i in range(N)]
            assert batch.quality[-(N + 2) :][:N].tolist() == [0] * N
            assert batch.quality[-2] == 2 and "array holds an array of 3" in (c.last_error or "")
            # The deadband: 21.3 is within 0.5 of 21.0 and never reported; 22.0 is.
            for value in (21.3, 22.0):
                await nodes["level"].write_value(value)
                await asyncio.sleep(0.3)
            seen: list[float] = []
            level = N + 1

            async def gather() -> bool:
                b = await c.collect()
                seen.extend(b.value[: len(b) - (N + 2)][b.signal[: len(b) - (N + 2)] == level].tolist())
                return 22.0 in seen

            deadline = time.monotonic() + 60
            while not await gather():
                assert time.monotonic() < deadline, seen
                await asyncio.sleep(0.1)
            assert 21.3 not in seen
            await c.close()
        finally:
            await server.stop()

    asyncio.run(body())


def test_recovery_after_a_restart_that_moves_the_namespace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "profiles").mkdir()
    small = {"name": "small-machine", "protocol": "opcua", "nodes": [{"name": "v7", "node": f"nsu={NAMESPACE};s=V7"}]}
    (tmp_path / "profiles" / "small.yaml").write_text(yaml.safe_dump(small), encoding="utf-8")
    port = free_port()
    config = {
        "agent": {"id": "t", "site": "s", "workshop": "w", "buffer": {"path": str(tmp_path / "b.sqlite3")}},
        "profile_dirs": ["profiles"],
        "sinks": [],
        "devices": [
            {"name": "m", "line": "l", "profile": "small-machine", "endpoint": f"opc.tcp://127.0.0.1:{port}/big"}
            | {"poll_interval": "100ms", "timeout": "2s"}
        ],
    }
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    figures: dict[str, float] = {}

    async def body() -> None:
        server, _ = await big_server(port)
        agent = Agent(load_config(tmp_path / "agent.yaml"), ScaledClock(speed=1.0))
        task = asyncio.create_task(agent.run(drain_s=1))
        try:
            await until(lambda: agent.health[0].polls > 5, "polling")
            await server.stop()
            await until(lambda: agent.health[0].failures >= 4, "backing off while the server is away")
            polls = agent.health[0].polls
            server, nodes = await big_server(port, filler_namespaces=3)
            ready = time.monotonic()
            await nodes["v7"].write_value(7.5)
            await until(lambda: agent.health[0].polls > polls, "polling again", step=0.01)
            figures["recovered_s"] = time.monotonic() - ready
            await until(lambda: agent.pipeline.last_raw.value.tolist()[-1:] == [7.5], "the new value", step=0.01)
        finally:
            agent.stop()
            await task
            await server.stop()

    asyncio.run(body())
    with capsys.disabled():
        print(f"\nOPC UA server back (namespace moved): values again after {figures['recovered_s']:.2f} s")
