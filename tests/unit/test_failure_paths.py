"""Failures that must not lose points: a local store that refuses a write, a sink that breaks."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from edge_agent.collectors.batch import Batch
from edge_agent.config import load_config
from edge_agent.demo.plant import Plant
from edge_agent.demo.workshop import demo_config, write_config
from edge_agent.runtime.agent import Agent
from edge_agent.runtime.forwarder import Forwarder
from edge_agent.store.catalog import Series, SeriesCatalog
from edge_agent.store.local import LocalStore


def agent_without_devices_running(tmp_path: Path) -> Agent:
    cfg = demo_config(Plant(1), "opc.tcp://127.0.0.1:1/x", 2, str(tmp_path / "store.sqlite3"), [])
    return Agent(load_config(write_config(tmp_path / "agent.yaml", cfg)))


def test_a_refused_store_write_keeps_the_points_for_the_next_tick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    agent = agent_without_devices_running(tmp_path)
    real_append = agent.store.points.append
    calls = {"n": 0}

    def failing_once(batch: Batch, state: dict[str, str] | None = None) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise sqlite3.OperationalError("database or disk is full")
        real_append(batch, state)

    monkeypatch.setattr(agent.store.points, "append", failing_once)
    agent.pipeline.ingest(3, Batch.of(agent.clock.now_ns(), np.arange(7, dtype=np.int32), np.arange(7.0)))
    first = agent.tick()
    assert agent.store.points.stats().pending_points == 0
    assert "cannot write to the local store" in caplog.text
    second = agent.tick()
    assert agent.store.points.stats().pending_points == first + second == agent.points_produced
    assert "accepts writes again" in caplog.text


class BrokenOnce:
    """A sink with a bug that shows once (it raises something that is not SinkUnavailable)."""

    name, batch_size, concurrency = "broken-once", 100, 1

    def __init__(self, expect: int) -> None:
        self.calls, self.received, self.expect = 0, 0, expect
        self.all_received = threading.Event()

    def write(self, batch: Batch, catalog: SeriesCatalog) -> None:
        self.calls += 1
        if self.calls == 1:
            raise KeyError("surprise")
        self.received += len(batch)
        if self.received >= self.expect:
            self.all_received.set()

    def close(self) -> None:
        return


def test_a_sink_that_raises_something_unexpected_is_retried(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = LocalStore(tmp_path / "s.sqlite3")
    buffer = store.points
    (sid,) = store.series.register([Series.of("m", {}, "v")]).tolist()
    sink = BrokenOnce(expect=250)
    forwarder = Forwarder(buffer, store.series.catalog, sink)
    buffer.append(Batch.of(np.arange(250, dtype=np.int64), np.full(250, sid, np.int32), np.ones(250)))

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(forwarder.run(stop, idle_s=0.01))
        assert await asyncio.to_thread(sink.all_received.wait, 30)
        stop.set()
        await task

    asyncio.run(asyncio.wait_for(run(), 30))
    assert sink.received == 250
    assert buffer.stats().pending_points == 0
    assert "unexpected KeyError" in caplog.text
    forwarder.close()


def test_backing_off_ends_when_a_shared_connection_is_made_again() -> None:
    """A device waiting out a long backoff polls again as soon as a device sharing its connection
    has reconnected it (``link_generation`` grew); without that signal it waits the full delay."""
    from edge_agent.runtime.clock import ScaledClock  # noqa: PLC0415
    from edge_agent.runtime.polling import DeviceHealth, DevicePoller  # noqa: PLC0415

    class Shared:
        link_generation = 1

    async def body() -> None:
        collector = Shared()
        poller = DevicePoller(0, collector, DeviceHealth("d", "x"), 1.0, 1.0, ScaledClock(speed=1.0), lambda i, b: None)  # type: ignore[arg-type]
        waiting = asyncio.create_task(poller._back_off(3600.0))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        collector.link_generation = 2
        await asyncio.wait_for(waiting, 60)  # an hour's backoff ended by the reconnection

    asyncio.run(body())
