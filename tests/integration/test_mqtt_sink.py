"""The MQTT sink against Debian's mosquitto: a password file, an ACL and a TLS listener with a CA
made for the test; an independent subscriber counts what arrives."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.collectors.batch import Batch
from edge_agent.config import load_config
from edge_agent.config.yaml_source import ConfigError
from edge_agent.sinks.base import RejectedPoints, SinkContext, SinkUnavailable, make_sink
from edge_agent.store.catalog import Series, SeriesCatalog
from tests.integration.workshop import run_workshop
from tests.mosquitto_server import USERS, Mosquitto, Subscriber

BASE = {"site": "suzhou", "workshop": "w1", "agent": "edge-1", "line": "line/a", "machine": "M1"}
CATALOG = SeriesCatalog(
    {
        0: Series.of("raw", {**BASE, "device": "press-1", "signal": "temp", "unit": "degC"}, "value"),
        1: Series.of("raw", {**BASE, "device": "press-1", "signal": "state"}, "value"),
        2: Series.of("oee", {**BASE, "window": "1m"}, "oee"),
        3: Series.of("oee", {**BASE, "window": "1m"}, "good"),
        4: Series.of("kpi", {"site": "suzhou", "workshop": "w1", "agent": "edge-1"}, "networking_rate"),
    }
)
T0 = 1_796_615_071_234_746_525


def wait_for(condition: Any, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        time.sleep(0.05)


def sink_for(broker: Mosquitto, tmp_path: Path, **options: Any) -> Any:
    """A sink built from agent.yaml text, as the agent builds it."""
    (tmp_path / "agent.yaml").write_text(
        json.dumps(
            {
                "agent": {"id": "edge-1", "site": "suzhou", "workshop": "w1"},
                "sinks": [{"type": "mqtt", "url": f"mqtt://127.0.0.1:{broker.port}", **options}],
                "devices": [
                    {"name": "p", "profile": "demo-press-modbus", "endpoint": "modbus://127.0.0.1:1", "line": "l"}
                ],
            }
        ),
        encoding="utf-8",
    )
    loaded = load_config(tmp_path / "agent.yaml")
    return make_sink(loaded.config.sinks[0], SinkContext(tmp_path, tmp_path, "edge-1"))


def test_unified_namespace_topics_and_payloads(broker: Mosquitto, tmp_path: Path) -> None:
    reader = Subscriber(broker, "plant/#").start()
    sink = sink_for(broker, tmp_path, username="edge", password=USERS["edge"], topic_prefix="plant/")
    try:
        batch = Batch.of([T0] * 5, [0, 1, 2, 3, 4], [71.5, 2.0, 0.5, 7.0, 1.0], [0, 3, 0, 0, 0])
        sink.write(batch, CATALOG)  # returns once every PUBACK arrived
        wait_for(lambda: len(reader.messages()) >= 4, "4 messages at the subscriber")
    finally:
        sink.close()
        reader.stop()
    got = {topic: json.loads(payload) for topic, payload in reader.messages()}
    temp = got["plant/suzhou/w1/line_a/M1/raw/temp"]
    assert temp == {
        "time": "2026-12-07T03:44:31.234746525Z",
        "timestamp_ms": T0 // 1_000_000,
        "agent": "edge-1",
        "device": "press-1",
        "unit": "degC",
        "value": 71.5,
        "quality": "good",
    }
    assert got["plant/suzhou/w1/line_a/M1/raw/state"]["value"] is None
    assert got["plant/suzhou/w1/line_a/M1/raw/state"]["quality"] == "unreachable"
    # The fields of one OEE window at one time make one message.
    window = got["plant/suzhou/w1/line_a/M1/oee/1m"]
    assert (window["oee"], window["good"]) == (0.5, 7)
    assert got["plant/suzhou/w1/kpi"]["networking_rate"] == 1
    assert len(reader.messages()) == 4


def test_topic_templates_replace_the_namespace_per_measurement(broker: Mosquitto, tmp_path: Path) -> None:
    """``topics`` gives raw and oee points the integrator's own topics; the rest keep the namespace."""
    reader = Subscriber(broker, "plant/#").start()
    templates = {"raw": "tpl/{workshop}/{machine}/{signal}", "oee": "tpl/{machine}/oee-{window}"}
    sink = sink_for(broker, tmp_path, username="edge", password=USERS["edge"], topic_prefix="plant/", topics=templates)
    try:
        batch = Batch.of([T0] * 5, [0, 1, 2, 3, 4], [71.5, 2.0, 0.5, 7.0, 1.0], [0, 0, 0, 0, 0])
        sink.write(batch, CATALOG)
        wait_for(lambda: len(reader.messages()) >= 4, "4 messages at the subscriber")
    finally:
        sink.close()
        reader.stop()
    got = {topic: json.loads(payload) for topic, payload in reader.messages()}
    assert set(got) == {"plant/tpl/w1/M1/temp", "plant/tpl/w1/M1/state", "plant/tpl/M1/oee-1m", "plant/suzhou/w1/kpi"}
    temp = got["plant/tpl/w1/M1/temp"]
    # Tags in the topic are not repeated; the others stay in the payload.
    assert {k: temp[k] for k in ("site", "line", "agent", "device", "unit", "value")} == {
        "site": "suzhou",
        "line": "line/a",
        "agent": "edge-1",
        "device": "press-1",
        "unit": "degC",
        "value": 71.5,
    }
    assert not {"workshop", "machine", "signal"} & set(temp)
    assert (got["plant/tpl/M1/oee-1m"]["oee"], got["plant/tpl/M1/oee-1m"]["good"]) == (0.5, 7)


def test_a_topic_template_that_would_merge_series_is_refused_at_load(broker: Mosquitto, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        sink_for(broker, tmp_path, topics={"raw": "plant/{machine}", "alarms": "x/{signal}"})
    text = "\n".join(info.value.problems)
    assert "topics.raw: the topic must hold {signal}: two series would share a topic" in text
    assert "topics.alarms: 'alarms' is no measurement the agent writes" in text


def test_a_topic_the_acl_refuses_is_a_refusal(broker: Mosquitto, tmp_path: Path) -> None:
    """MQTT 5: mosquitto answers PUBACK 'not authorized'; the points are refused, not retried."""
    sink = sink_for(broker, tmp_path, username="edge", password=USERS["edge"], topic_prefix="elsewhere/")
    try:
        with pytest.raises(RejectedPoints, match="refused 1 points on 1 topic"):
            sink.write(Batch.of([T0], [0], [1.0]), CATALOG)
    finally:
        sink.close()


def refusal_of(sink: Any, batch: Batch) -> RejectedPoints:
    """Write ``batch`` as the forwarder does, again while the broker is unavailable, until refused."""
    deadline = time.monotonic() + 60
    while True:
        try:
            sink.write(batch, CATALOG)
        except RejectedPoints as exc:
            print("REFUSED", exc.refused)
            return exc
        except SinkUnavailable as e:
            print("UNAVAILABLE", e)
            assert time.monotonic() < deadline, "the broker stayed unavailable for 60 s"
            continue
        raise AssertionError("the batch was taken whole, refused topics and all")


def test_a_known_refused_topic_and_a_new_one_in_one_batch_are_both_named(broker: Mosquitto, tmp_path: Path) -> None:
    """A topic refused before is held back; a topic refused for the first time in the same batch
    is learnt from the part that was sent. The refusal names the points of both, by their index
    in the whole batch, so that none of them is counted as written; the rest arrives."""
    reader = Subscriber(broker, "plant/#").start()
    templates = {"raw": "plant/{machine}/{signal}", "oee": "x/{machine}/oee-{window}"}
    sink = sink_for(broker, tmp_path, username="edge", password=USERS["edge"], topics=templates)
    try:
        first = refusal_of(sink, Batch.of([T0] * 2, [0, 2], [70.0, 0.5], [0, 0]))
        assert first.refused is not None and first.refused.tolist() == [1]
        # oee is known to be refused now; kpi (the namespace, outside plant/) is not yet.
        batch = Batch.of([T0 + 1] * 5, [2, 0, 4, 3, 1], [0.6, 71.0, 1.0, 7.0, 2.0], [0] * 5)
        second = refusal_of(sink, batch)
        assert second.refused is not None and second.refused.tolist() == [0, 2, 3]
        assert "x/M1/oee-1m" in str(second) and "suzhou/w1/kpi" in str(second)
        wait_for(lambda: {"plant/M1/temp", "plant/M1/state"} <= {t for t, _ in reader.messages()}, "raw values")
    finally:
        sink.close()
        reader.stop()
    assert not [t for t, _ in reader.messages() if not t.startswith("plant/")]


def test_a_refusal_of_the_part_sent_is_named_in_the_whole_batch(broker: Mosquitto, tmp_path: Path) -> None:
    """The same, when the broker answers the new topic's PUBACK with 'not authorized' and keeps
    the connection: mosquitto 2.0 does so only sometimes (else it closes the connection, as
    above), so here the sent part's publishing stands in for that broker: it refuses kpi."""
    sink = sink_for(broker, tmp_path, username="edge", password=USERS["edge"], topics={"oee": "x/{machine}/{window}"})
    sent: list[list[int]] = []

    def publish(batch: Batch, messages: Any) -> None:
        sent.append(batch.signal.tolist())
        kpi = np.flatnonzero(batch.signal == 4)
        if kpi.shape[0]:
            raise RejectedPoints("refused kpi", refused=kpi)

    sink._publish = publish
    sink._denied["x/M1/1m"] = ("Not authorized", time.monotonic())
    try:
        with pytest.raises(RejectedPoints) as info:
            sink.write(Batch.of([T0] * 6, [0, 2, 4, 1, 3, 4], [1.0, 0.5, 1.0, 2.0, 7.0, 0.9], [0] * 6), CATALOG)
    finally:
        sink.close()
    assert sent == [[0, 4, 1, 4]]  # oee held back
    assert info.value.refused is not None and info.value.refused.tolist() == [1, 2, 4, 5]
    assert info.value.dropped == 4


def test_wrong_password_is_unavailable_and_not_shown(broker: Mosquitto, tmp_path: Path) -> None:
    sink = sink_for(broker, tmp_path, username="edge", password="wrong-secret-77", timeout="2s")
    try:
        deadline = time.monotonic() + 30
        while True:
            with pytest.raises(SinkUnavailable) as info:
                sink.write(Batch.of([T0], [0], [1.0]), CATALOG)
            if "refused the connection" in str(info.value) or time.monotonic() > deadline:
                break
        assert "refused the connection" in str(info.value), str(info.value)
        assert "wrong-secret-77" not in str(info.value)
    finally:
        sink.close()


def test_tls_with_the_plants_ca(broker: Mosquitto, tmp_path: Path) -> None:
    reader = Subscriber(broker, "plant/#").start()
    url = f"mqtts://127.0.0.1:{broker.tls_port}"
    sink = sink_for(
        broker,
        tmp_path,
        url=url,
        ca_file=str(broker.ca),
        username="edge",
        password=USERS["edge"],
        topic_prefix="plant/",
    )
    try:
        sink.write(Batch.of([T0], [0], [12.25]), CATALOG)
        wait_for(lambda: any(json.loads(p).get("value") == 12.25 for _, p in reader.messages()), "the TLS message")
    finally:
        sink.close()
        reader.stop()


def test_a_broker_outage_is_ridden_out(broker: Mosquitto, tmp_path: Path) -> None:
    """Down: writes fail (the points stay in the store); back: the same sink writes again."""
    sink = sink_for(broker, tmp_path, username="edge", password=USERS["edge"], topic_prefix="plant/", timeout="2s")
    try:
        sink.write(Batch.of([T0], [0], [1.0]), CATALOG)
        broker.stop()
        with pytest.raises(SinkUnavailable):
            sink.write(Batch.of([T0], [0], [2.0]), CATALOG)
        broker.start()
        reader = Subscriber(broker, "plant/#").start()

        def written() -> bool:
            try:
                sink.write(Batch.of([T0 + 5], [0], [3.0]), CATALOG)
            except SinkUnavailable:
                return False
            return True

        wait_for(written, "a write after the broker came back")
        wait_for(
            lambda: any(json.loads(p).get("value") == 3 for _, p in reader.messages()), "the message after the outage"
        )
        reader.stop()
    finally:
        sink.close()


def test_the_agent_streams_the_workshop_to_the_broker(broker: Mosquitto, tmp_path: Path) -> None:
    """The demo workshop into mosquitto: every raw point is one message, nothing left in the store."""
    reader = Subscriber(broker, "plant/#").start()
    sink = {
        "type": "mqtt",
        "url": f"mqtt://127.0.0.1:{broker.port}",
        "username": "edge",
        "password": USERS["edge"],
        "topic_prefix": "plant/",
    }
    run = asyncio.run(run_workshop(tmp_path, [sink], wall_s=8.0))
    report = run.agent.health_report()
    assert report["buffer"]["pending_points"] == 0, report["buffer"]  # every point acknowledged by the broker
    names = [d["name"] for d in run.config["devices"]]

    def every_device_seen() -> bool:
        payloads = [json.loads(p) for t, p in reader.messages() if "/raw/" in t]
        return {p.get("device") for p in payloads} >= set(names)

    wait_for(every_device_seen, "raw messages of every device at the subscriber")
    reader.stop()
    topics = {t for t, _ in reader.messages()}
    machines = [d.get("machine", d["name"]) for d in run.config["devices"] if d.get("oee")]
    for machine in machines:
        assert any(f"/{machine}/oee/1m" in t for t in topics), f"no OEE window of {machine}"
        assert any(f"/{machine}/state" in t for t in topics), f"no state of {machine}"
    assert all(t.startswith("plant/demo-site/") for t in topics)


def test_exact_counts_at_an_independent_subscriber(broker: Mosquitto, tmp_path: Path) -> None:
    """Three batches of 400 raw points at distinct times: 1,200 messages arrive, each once."""
    reader = Subscriber(broker, "plant/+/+/+/+/raw/#").start()
    sink = sink_for(
        broker, tmp_path, username="edge", password=USERS["edge"], topic_prefix="plant/", batch_size=400, qos=1
    )
    try:
        for k in range(3):
            ts = [T0 + (k * 400 + i) * 1_000_000 for i in range(400)]
            sink.write(Batch.of(ts, [0] * 400, [float(k * 400 + i) for i in range(400)]), CATALOG)
        wait_for(lambda: len(reader.messages()) >= 1200, "1,200 messages")
    finally:
        sink.close()
        reader.stop()
    values = sorted(json.loads(p)["value"] for _, p in reader.messages())
    assert values == list(range(1200))
