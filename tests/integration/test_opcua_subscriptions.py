"""Subscribed OPC UA changes flow on their own clock (asyncua's server on loopback).

100 items change every 100 ms; the device is polled once a minute. Every change reaches the local
store long before the next poll, none is missing between the first and the last kept, and a stop
keeps what the subscription had delivered. With subscribed-only nodes (``poll: false``) the
latest values are still reported each poll.
"""

from __future__ import annotations

import asyncio
import datetime
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from asyncua import Server, ua

from edge_agent.config import load_config
from edge_agent.runtime.agent import Agent
from tests.influx_server import free_port

NAMESPACE = "urn:test:fast-plant"
ITEMS = 100


async def changing_server(port: int) -> tuple[Server, list[Any]]:
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/fast")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    ns = await server.register_namespace(NAMESPACE)
    folder = await server.nodes.objects.add_object(ua.NodeId("Fast", ns), ua.QualifiedName("Fast", ns))
    nodes = [
        await folder.add_variable(ua.NodeId(f"C{i}", ns), ua.QualifiedName(f"C{i}", ns), 0.0) for i in range(ITEMS)
    ]
    await server.start()
    return server, nodes


async def change_every_100ms(nodes: list[Any], running: Callable[[], bool]) -> int:
    """Write k = 1, 2, ... to every item, one step per 100 ms; returns the last k written."""
    k = 0
    next_at = time.monotonic()
    while running():
        k += 1
        now = datetime.datetime.now(datetime.UTC)
        for node in nodes:
            await node.write_value(ua.DataValue(ua.Variant(float(k), ua.VariantType.Double), SourceTimestamp=now))
        next_at += 0.1
        await asyncio.sleep(max(next_at - time.monotonic(), 0.0))
    return k


def write_agent(tmp_path: Path, port: int, poll: bool) -> Path:
    profile = {
        "name": "fast-machine",
        "protocol": "opcua",
        "nodes": [
            {"name": f"c{i}", "node": f"nsu={NAMESPACE};s=C{i}", "subscribe": True, "poll": poll} for i in range(ITEMS)
        ],
    }
    (tmp_path / "profiles").mkdir(exist_ok=True)
    (tmp_path / "profiles" / "fast.yaml").write_text(yaml.safe_dump(profile), encoding="utf-8")
    config = {
        "agent": {"id": "sub", "site": "s", "workshop": "w", "buffer": {"path": str(tmp_path / "store.sqlite3")}},
        "profile_dirs": ["profiles"],
        "sinks": [],
        "analytics": {"anomaly": {"detectors": []}},
        "devices": [
            {
                "name": "fast",
                "line": "l",
                "profile": "fast-machine",
                "endpoint": f"opc.tcp://127.0.0.1:{port}/fast",
                "poll_interval": "60s",
            }
        ],
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def stored_values(store: Path) -> dict[str, np.ndarray]:
    """Every good raw value the local store holds, by signal name, in time order."""
    db = sqlite3.connect(store)
    names = {
        sid: tags
        for sid, tags, measurement in db.execute("SELECT id, tags, measurement FROM catalog")
        if measurement == "raw"
    }
    parts: list[tuple[np.ndarray, ...]] = []
    for ts, sig, val, q in db.execute("SELECT ts, signal, value, quality FROM chunks ORDER BY id"):
        parts.append(
            (np.frombuffer(ts, "<i8"), np.frombuffer(sig, "<i4"), np.frombuffer(val, "<f8"), np.frombuffer(q, np.uint8))
        )
    db.close()
    if not parts:
        return {}
    ts, sig, val, q = (np.concatenate(c) for c in zip(*parts, strict=True))
    out: dict[str, np.ndarray] = {}
    for sid, tags in names.items():
        pick = (sig == sid) & (q == 0)
        order = np.argsort(ts[pick], kind="stable")
        signal = yaml.safe_load(tags)["signal"]
        out[signal] = val[pick][order]
    return out


async def until(what: str, condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("poll", [True, False], ids=["polled-and-subscribed", "subscribed-only"])
def test_every_change_reaches_the_store_between_polls_and_at_stop(tmp_path: Path, poll: bool) -> None:
    port = free_port()
    path = write_agent(tmp_path, port, poll)
    store = tmp_path / "store.sqlite3"

    async def body() -> tuple[int, Agent]:
        server, nodes = await changing_server(port)
        changing = {"on": True}
        writer = asyncio.create_task(change_every_100ms(nodes, lambda: changing["on"]))
        agent = Agent(load_config(path))
        running = asyncio.create_task(agent.run(drain_s=5))
        try:
            # The poll is a minute away: only the subscription can bring 30 changes of every item.
            def thirty_each() -> bool:
                values = stored_values(store)
                return len(values) == ITEMS and all(np.unique(v).shape[0] >= 30 for v in values.values())

            await until("30 changes of every item in the store", thirty_each, timeout_s=45)
        finally:
            agent.stop()  # while the items still change: what was delivered is kept
            await running
            changing["on"] = False
            last = await writer
            await server.stop()
        return last, agent

    last, agent = asyncio.run(asyncio.wait_for(body(), 180))
    values = stored_values(store)
    assert len(values) == ITEMS
    for name, v in values.items():
        changes = np.unique(v)
        assert changes.shape[0] >= 30, name
        # Consecutive from the first change kept to the last: no change lost in between.
        assert np.array_equal(changes, np.arange(changes[0], changes[-1] + 1)), f"{name}: a change is missing"
        assert changes[-1] <= last
    device = agent.health_report()["devices"][0]
    assert device["changes_dropped"] == 0
    assert agent.health_report()["buffer"]["dropped"] == {}
