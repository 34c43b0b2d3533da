"""Interop with an OPC UA stack that is not ours: node-opcua (npm, pinned in tests/interop)
serving only SignAndEncrypt/Basic256Sha256 with user names, MaxNodesPerRead 100 and
MaxMonitoredItemsPerCall 50 (which node-opcua enforces). The agent's collector connects as
configured, reads 303 nodes in chunks with exact values (a UInt32 above 2^31), receives state
changes by subscription, and is refused with a weaker configuration or a wrong password."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from edge_agent.collectors.opcua.client import Access, OpcUaCollector
from edge_agent.collectors.opcua.security import Security, UntrustedServer
from edge_agent.config import load_profile
from tests.influx_server import free_port

PEER = Path(__file__).parents[1] / "interop"
NAMESPACE = "urn:test:node-opcua-plant"
PASSWORD = "Node-Opcua-Secret-8812"  # noqa: S105 - a test secret to search for


@pytest.fixture
def node_opcua(tmp_path: Path) -> Iterator[str]:
    node = shutil.which("node")
    if node is None or not (PEER / "node_modules" / "node-opcua").is_dir():
        pytest.fail("node-opcua is not installed: run make test (it runs npm ci in tests/interop)")
    port = free_port()
    env = {**os.environ, "OPCUA_TEST_PASSWORD": PASSWORD}
    process = subprocess.Popen(
        [node, str(PEER / "opcua_server.js"), str(port), str(tmp_path / "server-pki"), NAMESPACE],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if line.startswith("listening"):
                break
            assert line or process.poll() is None, "node-opcua exited before listening"
        yield f"opc.tcp://127.0.0.1:{port}/ua"
    finally:
        process.terminate()
        process.wait(30)


def profile(tmp_path: Path) -> object:
    nodes = [
        {"name": "temp", "node": f"nsu={NAMESPACE};s=M1.Temp"},
        {"name": "parts", "node": f"nsu={NAMESPACE};s=M1.Parts", "kind": "counter"},
        {"name": "state", "node": f"nsu={NAMESPACE};s=M1.State", "kind": "state", "subscribe": True},
    ] + [{"name": f"v{i}", "node": f"nsu={NAMESPACE};s=M1.V{i}"} for i in range(300)]
    path = tmp_path / "node-opcua.yaml"
    path.write_text(
        yaml.safe_dump({"name": "node-opcua-machine", "protocol": "opcua", "nodes": nodes}), encoding="utf-8"
    )
    return load_profile(path)


def test_sign_and_encrypt_with_node_opcua(node_opcua: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = profile(tmp_path)
    secure = Access(
        Security(mode="SignAndEncrypt", policy="Basic256Sha256"), "operator", PASSWORD, pki=tmp_path / "pki"
    )

    async def body() -> None:
        c = OpcUaCollector(p, node_opcua, {}, time.time_ns, timeout_s=10, access=secure)  # type: ignore[arg-type]
        with caplog.at_level(logging.INFO):
            await c.connect()
        assert c.health()["max_nodes_per_read"] == 100
        states: set[float] = set()
        deadline = time.monotonic() + 60
        while len(states) < 2:
            assert time.monotonic() < deadline, states
            batch = await c.collect()
            polled = batch.value[-303:]
            assert polled[0] == 21.5 and polled[1] == 3_000_000_000.0
            assert polled[3:].tolist() == [float(i) for i in range(300)]
            assert (batch.quality == 0).all(), c.last_error
            states |= set(batch.value[: len(batch) - 303].tolist())
            await asyncio.sleep(0.2)
        await c.close()
        weak = OpcUaCollector(
            p, node_opcua, {}, time.time_ns, access=Access(username="operator", password=PASSWORD, pki=tmp_path / "pki")
        )  # type: ignore[arg-type]
        with pytest.raises(UntrustedServer, match="it offers"):
            await weak.connect()
        wrong = Access(secure.security, "operator", "wrong-" + PASSWORD, pki=tmp_path / "pki")
        bad = OpcUaCollector(p, node_opcua, {}, time.time_ns, timeout_s=10, access=wrong)  # type: ignore[arg-type]
        with pytest.raises(ConnectionError) as info:
            await bad.connect()
        assert PASSWORD not in str(info.value)

    asyncio.run(body())
    assert all(PASSWORD not in r.getMessage() for r in caplog.records)


def test_profile_browse_against_node_opcua(node_opcua: str, tmp_path: Path) -> None:
    """``edge-agent profile browse`` on node-opcua's address space (SignAndEncrypt, a user name):
    the profile it writes passes ``profile check`` and collects every value."""
    from edge_agent.cli import main  # noqa: PLC0415

    secret = tmp_path / "pw"
    secret.write_text(PASSWORD, encoding="utf-8")
    out = tmp_path / "browsed.yaml"
    args = ["profile", "browse", node_opcua, "--out", str(out), "--pki", str(tmp_path / "pki"), "--timeout", "30"]
    args += ["--security-mode", "SignAndEncrypt", "--username", "operator", "--password-file", str(secret)]
    assert main(args) == 0
    profile = load_profile(out)
    names = [n.name for n in profile.nodes]  # type: ignore[attr-defined]
    assert {"m1_temp", "m1_parts", "m1_state"} <= set(names) and len(names) == 303
    assert all(n.node.startswith(f"nsu={NAMESPACE};") for n in profile.nodes)  # type: ignore[attr-defined]
    assert PASSWORD not in out.read_text(encoding="utf-8")
    access = Access(Security(mode="SignAndEncrypt"), "operator", PASSWORD, pki=tmp_path / "pki")

    async def body() -> None:
        c = OpcUaCollector(profile, node_opcua, {}, time.time_ns, timeout_s=30, access=access)  # type: ignore[arg-type]
        await c.connect()
        batch = await c.collect()
        assert (batch.quality == 0).all(), c.last_error
        values = dict(zip(names, batch.value[-303:].tolist(), strict=True))
        assert values["m1_temp"] == 21.5 and values["m1_parts"] == 3_000_000_000.0
        await c.close()

    asyncio.run(body())
