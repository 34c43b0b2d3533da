"""``edge-agent profile browse`` against two real servers (asyncua's): the demo plant, whose
machines share one structure (a ``{machine}`` profile comes out), and a server that only offers
SignAndEncrypt with a user name. Each written profile passes ``profile check`` and collects."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import yaml

from edge_agent.cli import main
from edge_agent.collectors.opcua.client import Access, OpcUaCollector
from edge_agent.collectors.opcua.security import Security
from edge_agent.config import load_profile
from edge_agent.demo.plant import Plant
from edge_agent.demo.servers import DemoServers
from edge_agent.runtime.clock import ScaledClock
from tests.influx_server import free_port
from tests.integration.test_opcua_security import PASSWORD, secure_server, server_certificate


def test_browse_the_demo_plant_into_a_profile_that_collects(tmp_path: Path) -> None:
    out = tmp_path / "browsed.yaml"

    async def body() -> None:
        servers = DemoServers(Plant(seed=5), ScaledClock(speed=1.0))
        await servers.start()
        try:
            code = await asyncio.to_thread(main, ["profile", "browse", servers.opcua_endpoint, "--out", str(out)])
            assert code == 0
            profile = load_profile(out)
            data = yaml.safe_load(out.read_text(encoding="utf-8"))
            nodes = {n["name"]: n for n in data["nodes"]}
            assert nodes["state"]["kind"] == "state" and nodes["state"]["subscribe"] is True
            assert nodes["part_count"]["kind"] == "counter"
            assert all("{machine}" in n["node"] and n["node"].startswith("nsu=urn:") for n in data["nodes"])
            assert "{machine}: one of" in out.read_text(encoding="utf-8")
            machine = next(n for n, m in servers.plant.machines.items() if m.spec.protocol == "opcua")
            c = OpcUaCollector(profile, servers.opcua_endpoint, {"machine": machine}, time.time_ns)  # type: ignore[arg-type]
            await c.connect()
            batch = await c.collect()
            assert (batch.quality == 0).all(), c.last_error
            await c.close()
        finally:
            await servers.stop()

    asyncio.run(body())


def test_browse_a_server_that_requires_encryption(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "secure.yaml"
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD, encoding="utf-8")

    async def body() -> None:
        cert, key = await server_certificate(tmp_path / "server", "s")
        server = await secure_server(port, cert, key)
        endpoint = f"opc.tcp://127.0.0.1:{port}/secure"
        try:
            args = ["profile", "browse", endpoint, "--out", str(out), "--pki", str(tmp_path / "pki")]
            assert await asyncio.to_thread(main, args) == 1  # no None endpoint: refused, said why
            args += ["--security-mode", "SignAndEncrypt", "--username", "operator", "--password-file", str(secret)]
            assert await asyncio.to_thread(main, args) == 0
            profile = load_profile(out)
            assert {n.name for n in profile.nodes} == {"m1_temp", "m1_parts"}  # type: ignore[attr-defined]
            access = Access(Security(mode="SignAndEncrypt"), "operator", PASSWORD, pki=tmp_path / "pki")
            c = OpcUaCollector(profile, endpoint, {}, time.time_ns, access=access)  # type: ignore[arg-type]
            await c.connect()
            batch = await c.collect()
            assert sorted(batch.value.tolist()) == [21.5, 3_000_000_000.0]
            await c.close()
        finally:
            await server.stop()
        assert PASSWORD not in out.read_text(encoding="utf-8")

    asyncio.run(body())
