"""The agent never stops silently: each supervised task fails and comes back, poison flows past,
nothing is lost without a count. Real InfluxDB, a real (counting) Modbus server, the real agent."""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import edge_agent.runtime.forwarder as forwarder_module
from edge_agent.config import load_config
from edge_agent.runtime.agent import Agent
from tests.conftest import InfluxServer, free_port
from tests.faults.agent_process import AgentProcess
from tests.faults.counting_server import CountingServer, Unit
from tests.faults.test_faults import DB, agent_config, landed_seqs


class Fault:
    """Raises once, the next time the wrapped call is made after :meth:`arm`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._armed = threading.Event()
        self.fired = threading.Event()

    def arm(self) -> None:
        self.fired.clear()
        self._armed.set()

    def wrap(self, call: Callable[..., Any], when: Callable[..., bool] = lambda *a, **k: True) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if self._armed.is_set() and when(*args, **kwargs):
                self._armed.clear()
                self.fired.set()
                raise RuntimeError(f"injected fault in {self.name}")
            return call(*args, **kwargs)

        return wrapped


async def until(what: str, condition: Callable[[], bool], timeout_s: float = 120.0) -> None:
    """Wait for ``condition`` (a generous deadline, never a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def make_agent(tmp_path: Path, config: dict[str, Any]) -> Agent:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return Agent(load_config(path))


@pytest.fixture
def counting() -> Iterator[CountingServer]:
    srv = CountingServer(free_port(), {1: Unit(), 2: Unit()})
    srv.start()
    yield srv
    srv.close()


@pytest.mark.influxdb
def test_each_supervised_task_fails_comes_back_shows_it_and_loses_nothing_uncounted(
    influxdb: InfluxServer, counting: CountingServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One exception in turn into the tick, a poller, a forwarder and the checkpoint."""
    influxdb.query(f'DROP DATABASE "{DB}"')
    config = agent_config(tmp_path, influxdb.url, counting.port, [1, 2], poll="100ms", drain="30s")
    config["analytics"]["checkpoint_every"] = "1s"
    agent = make_agent(tmp_path, config)
    faults = {name: Fault(name) for name in ("tick", "poll-u1", f"sink-{agent.forwarders[0].sink.name}", "checkpoint")}
    tick, poll, sink, saving = faults.values()
    agent.pipeline.process = tick.wrap(agent.pipeline.process)  # type: ignore[method-assign]
    agent.pipeline.ingest = poll.wrap(agent.pipeline.ingest, lambda index, batch: index == 0)  # type: ignore[method-assign]
    monkeypatch.setattr(forwarder_module, "_wait", sink.wrap(forwarder_module._wait))
    agent._checkpoint = saving.wrap(agent._checkpoint)  # type: ignore[method-assign]
    shown: dict[str, list[str]] = {}

    async def body() -> None:
        running = asyncio.create_task(agent.run())
        tasks = agent.supervisor.tasks
        await until("polls", lambda: all(h.polls >= 5 for h in agent.health))
        for name, fault in faults.items():
            fault.arm()
            await until(f"{name} to fail", fault.fired.is_set)
            await until(f"{name} to restart", lambda name=name: tasks[name].restarts >= 1 and tasks[name].running)
            report = agent.health_report()
            shown[name] = [r for r in report["reasons"] if r.startswith(f"task {name} failed")]
            assert report["status"] == "degraded"
        polls = [h.polls for h in agent.health]
        await until(
            "polls after the faults", lambda: all(h.polls >= p + 5 for h, p in zip(agent.health, polls, strict=True))
        )
        agent.stop()
        await running

    asyncio.run(asyncio.wait_for(body(), 300))
    assert {name: len(reasons) for name, reasons in shown.items()} == dict.fromkeys(faults, 1)
    report = agent.health_report()
    assert {t["name"]: t["failures"] for t in report["tasks"] if t["failures"]} == dict.fromkeys(faults, 1)
    assert report["buffer"]["pending_points"] == 0
    dropped = report["buffer"]["dropped"]
    # The poller's failed hand-over lost one poll of u1 (3 points), counted; nothing else is missing.
    assert dropped == {"handover_failed": 3}
    for device, lost in (("u1", 1), ("u2", 0)):
        seqs = np.sort(landed_seqs(influxdb, device))
        assert np.unique(seqs).shape[0] == seqs.shape[0]
        assert int(seqs[-1] - seqs[0] + 1) - seqs.shape[0] == lost, device


def poisoned(seq: int) -> float:
    """A temperature near 60 degC with what broken sensors send in between: float32's largest and
    lowest values, 1e308 and NaN, each twice, from reply 150 on."""
    extreme = {150: 3.4028234663852886e38, 170: -3.4028234663852886e38, 190: 1e308, 210: math.nan}
    extreme |= {k + 100: v for k, v in extreme.items()}
    return extreme.get(seq, 60.0 + 0.5 * math.sin(seq / 7.0) + 0.05 * ((seq * 7919) % 13 - 6))


@pytest.mark.influxdb
def test_extreme_readings_flow_through_the_real_sink_and_do_not_poison_the_model(
    influxdb: InfluxServer, tmp_path: Path
) -> None:
    influxdb.query(f'DROP DATABASE "{DB}"')
    server = CountingServer(free_port(), {1: Unit(reading=poisoned)})
    server.start()
    try:
        config = agent_config(tmp_path, influxdb.url, server.port, [1], poll="20ms", drain="30s", readings=True)
        config["devices"][0]["anomaly_signals"] = ["reading", "reading32"]
        config["analytics"]["anomaly"] = {"score_interval": "0s"}
        agent = make_agent(tmp_path, config)
        backlog: list[int] = []

        async def body() -> None:
            running = asyncio.create_task(agent.run())
            await until("600 replies", lambda: server.units[1].seq >= 600, 300)
            await until("the backlog to drain", lambda: _pending(agent) < 500, 120)
            for _ in range(20):  # the backlog stays down while the device keeps sending
                backlog.append(_pending(agent))
                await asyncio.sleep(0.1)
            agent.stop()
            await running

        asyncio.run(asyncio.wait_for(body(), 400))
    finally:
        server.close()
    report = agent.health_report()
    assert report["buffer"]["pending_points"] == 0 and report["buffer"]["set_aside"] == {}
    assert max(backlog) < 2000, backlog
    # Every reading landed: numbers as numbers, NaN as a flagged reading.
    values = {
        row[0]: row[1]
        for row in influxdb.query('SELECT "value" FROM "raw" WHERE "signal" = \'reading\' AND time > 0', DB)[0][
            "values"
        ]
    }
    flagged = influxdb.query('SELECT "value_quality" FROM "raw" WHERE "signal" = \'reading\'', DB)
    assert [v for _, v in flagged[0]["values"]] == [2, 2]
    assert sum(1 for v in values.values() if abs(v) > 1e30) == 6
    # The extremes raised alarms tagged implausible; the normal readings after them score normally.
    alarms = influxdb.query('SELECT "active" FROM "alarm" WHERE "detector" = \'implausible\' AND "active" = 1', DB)
    assert alarms and len(alarms[0]["values"]) >= 2
    scores = influxdb.query(
        'SELECT "score" FROM "anomaly" WHERE "signal" = \'reading\' ORDER BY time DESC LIMIT 150', DB
    )[0]["values"]
    assert max(s for _, s in scores) < 1.0, "the model was poisoned: normal readings after the extremes alarm"
    assert agent.pipeline.anomaly.scorer.detectors.model is not None
    assert np.isfinite(agent.pipeline.anomaly.scorer.detectors.model.mean).all()


def _pending(agent: Agent) -> int:
    return int(agent.store.points.stats().pending_points)


@pytest.mark.parametrize("first", ["SIGHUP", "SIGTERM"])
def test_a_stop_always_wins_over_a_reload(
    influxdb: InfluxServer, counting: CountingServer, tmp_path: Path, first: str
) -> None:
    """SIGHUP and SIGTERM back to back, in both orders: the agent exits 0, bounded by the drain."""
    config = agent_config(tmp_path, influxdb.url, counting.port, [1, 2], drain="2s")
    agent = AgentProcess(tmp_path, config)
    agent.start()
    agent.wait_for("polls", lambda h: all(d["polls"] > 3 for d in h["devices"]))
    assert agent.process is not None
    signals = [signal.SIGHUP, signal.SIGTERM] if first == "SIGHUP" else [signal.SIGTERM, signal.SIGHUP]
    for sig in signals:
        agent.process.send_signal(sig)
        if sig == signal.SIGTERM:  # the second signal comes once the agent has taken the stop
            wait_for_line(agent, "stopping: draining")
    # Reloads keep coming while the agent stops (a late one used to kill it on its way out).
    deadline = time.monotonic() + 120  # a hang would run into systemd's SIGKILL: here, into this deadline
    while agent.process.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(ProcessLookupError):
            agent.process.send_signal(signal.SIGHUP)
        time.sleep(0.01)
    code = agent.process.wait(10)
    log = agent.log_text()
    assert code == 0, log[-2000:]
    assert log.count("started: 2 devices") <= 2, "the stop was lost: the agent started again after it"
    assert "agent stopped:" in log
    if first == "SIGTERM":  # every reload came after the stop: none took effect
        assert log.count("started: 2 devices") == 1, log[-2000:]


def wait_for_line(agent: AgentProcess, text: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in agent.log_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"no line {text!r}:\n{agent.tail()}")
        time.sleep(0.02)


def test_the_agent_starts_on_a_damaged_store_polls_and_says_so(
    influxdb: InfluxServer, counting: CountingServer, tmp_path: Path
) -> None:
    (tmp_path / "store.sqlite3").write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 64)
    agent = AgentProcess(tmp_path, agent_config(tmp_path, influxdb.url, counting.port, [1], drain="5s"))
    agent.start()
    h = agent.wait_for("polls on a fresh store", lambda h: h["devices"][0]["polls"] > 5 and h["sinks"][0]["written"])
    assert h["status"] == "degraded"
    (notice,) = h["buffer"]["damaged"]
    assert Path(notice["file"]).exists() and "damaged" in " ".join(h["reasons"])
    assert agent.terminate()[0] == 0
    influxdb.query(f'DROP DATABASE "{DB}"', DB)
