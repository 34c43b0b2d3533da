"""The fault tests of the InfluxDB sink, against an MQTT broker (Debian's mosquitto) with exact
counts from an independent subscriber: the broker down 60 s, kill -9 with a backlog, a broker
whose ACL refuses some of the agent's topics. Every poll reads the counting server's reply number
(``seq``), so what arrived can be checked reply by reply."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.faults.agent_process import AgentProcess
from tests.faults.counting_server import CountingServer
from tests.faults.test_faults import agent_config, pending, stopped_line, stored_seqs
from tests.mosquitto_server import USERS, Mosquitto, Subscriber


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    (tmp_path / "broker").mkdir()
    b = Mosquitto(tmp_path / "broker", persistence=True)
    b.start()
    yield b
    b.stop()


def mqtt_config(
    tmp: Path, broker: Mosquitto, server: CountingServer, units: list[int], prefix: str = "plant/"
) -> dict[str, Any]:
    cfg = agent_config(tmp, "http://127.0.0.1:1", server.port, units)
    cfg["sinks"] = [
        {
            "type": "mqtt",
            "url": f"mqtt://127.0.0.1:{broker.port}",
            "username": "edge",
            "password": USERS["edge"],
            "topic_prefix": prefix,
            "retry_max": "2s",
            "timeout": "5s",
        }
    ]
    return cfg


def seqs_received(reader: Subscriber) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for topic, payload in reader.messages():
        if topic.endswith("/raw/seq"):
            body = json.loads(payload)
            if body.get("value") is not None:
                out.setdefault(body["device"], []).append(int(body["value"]))
    return out


def assert_none_missing(received: dict[str, list[int]], devices: list[str]) -> dict[str, int]:
    """Each device's reply numbers are consecutive (none missing); QoS 1 may repeat one."""
    counts = {}
    for d in devices:
        seqs = sorted(set(received.get(d, [])))
        assert seqs, f"nothing arrived for {d}"
        missing = seqs[-1] - seqs[0] + 1 - len(seqs)
        assert missing == 0, f"{d}: {missing} replies missing between {seqs[0]} and {seqs[-1]}"
        counts[d] = len(seqs)
    return counts


def wait(condition: Any, what: str, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        time.sleep(0.1)


def test_broker_down_60s_then_back(broker: Mosquitto, server: CountingServer, tmp_path: Path) -> None:
    reader = Subscriber(broker, "plant/#", persistent=True).start()
    agent = AgentProcess(tmp_path, mqtt_config(tmp_path, broker, server, [1, 2, 3]))
    agent.start()
    try:
        agent.wait_for("the first points acknowledged", lambda h: h["sinks"][0]["written"] > 100)
        broker.stop()
        down_at = time.monotonic()
        agent.wait_for("the sink to notice", lambda h: not h["sinks"][0]["ok"])
        while time.monotonic() - down_at < 60:
            time.sleep(1)
        assert pending(agent.wait_for("health", lambda h: True)) > 0
        broker.start()
        agent.wait_for("the backlog to drain", lambda h: h["sinks"][0]["ok"] and pending(h) < 1000, 300)
        code, _ = agent.terminate()
        assert code == 0
        stored = {d: s for d, s in stored_seqs(tmp_path / "store.sqlite3").items() if s}
        assert stored == {}, "the store still holds replies after the drain"

        def caught_up() -> bool:
            # Up to the server's last answers (the very last ones may have come after the stop).
            got = seqs_received(reader)
            return all(max(got.get(f"u{u}", [-1])) >= server.units[u].answered[-1] - 5 for u in (1, 2, 3))

        wait(caught_up, "the messages of every device, up to its last replies")
        counts = assert_none_missing(seqs_received(reader), ["u1", "u2", "u3"])
        assert min(counts.values()) > 100
    finally:
        reader.stop()
        if agent.process is not None and agent.process.poll() is None:
            agent.kill()


def test_kill_9_with_a_backlog_then_restart(broker: Mosquitto, server: CountingServer, tmp_path: Path) -> None:
    reader = Subscriber(broker, "plant/#", persistent=True).start()
    broker.stop()
    agent = AgentProcess(tmp_path, mqtt_config(tmp_path, broker, server, [1, 2]))
    agent.start()
    try:
        agent.wait_for("a backlog", lambda h: pending(h) > 2000)
        agent.kill()
        stored = stored_seqs(tmp_path / "store.sqlite3")
        broker.start()
        agent.start()
        agent.wait_for("the backlog to drain", lambda h: h["sinks"][0]["ok"] and pending(h) < 500, 300)
        assert agent.terminate()[0] == 0

        def all_arrived() -> bool:
            got = seqs_received(reader)
            return all(seqs <= set(got.get(device, [])) for device, seqs in stored.items())

        wait(all_arrived, "every reply that was in the store at the kill")
    finally:
        reader.stop()
        if agent.process is not None and agent.process.poll() is None:
            agent.kill()


def test_topics_the_acl_refuses_are_set_apart_and_the_rest_flows(
    broker: Mosquitto, server: CountingServer, tmp_path: Path
) -> None:
    """The broker's ACL allows plant/# only; the raw values go there, every other measurement to
    the namespace's topics outside it. mosquitto 2.0 refuses such a message and then closes the
    connection (its PUBACK may be lost with it): the sink learns the refused topics, sets their
    points apart, and every raw value still arrives, none missing."""
    reader = Subscriber(broker, "#", persistent=True).start()
    cfg = mqtt_config(tmp_path, broker, server, [1, 2, 3], prefix="")
    cfg["sinks"][0]["topics"] = {"raw": "plant/{machine}/raw/{signal}"}
    agent = AgentProcess(tmp_path, cfg)
    agent.start()
    try:
        health = agent.wait_for(
            "raw values flowing beside the refused topics",
            lambda h: h["sinks"][0]["written"] > 600 and h["sinks"][0]["rejected"] > 0 and h["sinks"][0]["ok"],
            240,
        )
        sink = health["sinks"][0]
        assert "Not authorized" in sink["last_refusal"] or "closes the connection" in sink["last_refusal"], sink
        assert "check the broker's ACL for user 'edge'" in sink["last_refusal"]
        assert health["status"] == "degraded"
        assert any("set aside" in r and "ACL" in r for r in health["reasons"]), health["reasons"]
        agent.wait_for("the backlog to drain", lambda h: h["sinks"][0]["ok"] and pending(h) < 200, 240)
        last = agent.wait_for("health", lambda h: True)["sinks"][0]
        code, _ = agent.terminate()
        assert code == 0

        def caught_up() -> bool:
            got = seqs_received(reader)
            return all(max(got.get(f"u{u}", [-1])) >= server.units[u].answered[-1] - 5 for u in (1, 2, 3))

        wait(caught_up, "the raw values of every device, up to its last replies")
        counts = assert_none_missing(seqs_received(reader), ["u1", "u2", "u3"])
        assert min(counts.values()) > 50
        topics = {t for t, _ in reader.messages()}
        assert topics and all(t.startswith("plant/") for t in topics), sorted(topics)[:5]
        # What was refused is in the dead-letter table, counted, and none of it is a raw value.
        db = sqlite3.connect(tmp_path / "store.sqlite3")
        try:
            kept = db.execute("SELECT COALESCE(SUM(n), 0) FROM dead_letter").fetchone()[0]
            raw = {r[0] for r in db.execute("SELECT id FROM catalog WHERE measurement = 'raw'")}
            blobs = db.execute("SELECT signal FROM dead_letter").fetchall()
        finally:
            db.close()
        assert kept >= last["rejected"] > 0
        assert not any(set(np.frombuffer(b[0], "<i4").tolist()) & raw for b in blobs)
        assert stopped_line(agent)["dropped"].get("rejected", 0) == kept
    finally:
        reader.stop()
        if agent.process is not None and agent.process.poll() is None:
            agent.kill()
