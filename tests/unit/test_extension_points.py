"""A new protocol and a new sink plug in from outside: one registration each, nothing else edited.

The toy protocol ("counter://") counts up; the toy sink keeps what it is given in memory. Both are
registered here, in the test, and the real agent runs them end to end: agent.yaml validation
(with the toy's own device option), profile loading, polling, the pipeline, the local store and
the forwarder.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import pytest
import yaml
from pydantic import Field

from edge_agent.collectors import (
    Collector,
    CollectorContext,
    CollectorPlugin,
    DeviceOptions,
    DeviceSpec,
    register,
    unregister,
)
from edge_agent.collectors.batch import Batch
from edge_agent.collectors.profile import NAME_PATTERN, ProfileBase, SignalSpec
from edge_agent.config import ConfigError, load_config
from edge_agent.runtime.agent import Agent
from edge_agent.sinks import base as sinks
from edge_agent.store.catalog import SeriesCatalog


class CounterProfile(ProfileBase):
    protocol: Literal["counter"]
    counters: list[Annotated[str, Field(pattern=NAME_PATTERN)]]

    def signals(self) -> list[SignalSpec]:
        return [SignalSpec(name, "counter") for name in self.counters]


class CounterOptions(DeviceOptions):
    step: Annotated[int, Field(ge=1)] = 1


class CounterCollector:
    def __init__(self, profile: CounterProfile, device: DeviceSpec, context: CollectorContext) -> None:
        self.profile, self.options, self.now_ns = profile, device.options, context.now_ns
        self.value = 0
        self.last_error: str | None = None

    @property
    def name(self) -> str:
        return "counter"

    async def connect(self) -> None:
        return

    async def collect(self) -> Batch:
        self.value += self.options.step
        n = len(self.profile.counters)
        return Batch.of(self.now_ns(), np.arange(n, dtype=np.int32), np.full(n, float(self.value)))

    async def close(self) -> None:
        return

    def health(self) -> dict[str, Any]:
        return {"value": self.value}


def make_counter(profile: Any, device: DeviceSpec, context: CollectorContext) -> Collector:
    assert isinstance(profile, CounterProfile)
    return CounterCollector(profile, device, context)


class MemorySinkConfig(sinks.SinkConfig):
    type: Literal["memory"]
    label: str


class MemorySink:
    """Keeps every point it is handed, by series."""

    received: ClassVar[dict[str, list[float]]] = {}
    lock = threading.Lock()

    def __init__(self, config: MemorySinkConfig) -> None:
        self.name, self.batch_size, self.concurrency = f"memory:{config.label}", 100, 1

    def write(self, batch: Batch, catalog: SeriesCatalog) -> None:
        with self.lock:
            for sid, value in zip(batch.signal.tolist(), batch.value.tolist(), strict=True):
                series = catalog[sid]
                key = f"{series.measurement}/{series.tag_dict.get('signal', '')}/{series.field}"
                self.received.setdefault(key, []).append(value)

    def close(self) -> None:
        return


@pytest.fixture
def toys() -> Iterator[None]:
    register(CollectorPlugin("counter", CounterProfile, ("counter",), CounterOptions, make_counter))
    sinks.register(sinks.SinkPlugin("memory", MemorySinkConfig, lambda c, _: MemorySink(c)))
    MemorySink.received = {}
    yield
    unregister("counter")
    sinks.unregister("memory")


def _write(tmp_path: Path, step: object = 3) -> Path:
    profiles = tmp_path / "profiles"
    profiles.mkdir(exist_ok=True)
    (profiles / "toy.yaml").write_text("name: toy\nprotocol: counter\ncounters: [a, b]\n", encoding="utf-8")
    doc = {
        "agent": {"id": "t", "site": "s", "workshop": "w", "buffer": {"path": "store.sqlite3"}},
        "sinks": [{"type": "memory", "label": "mem"}],
        "profile_dirs": ["profiles"],
        "devices": [
            {"name": "c1", "line": "l", "profile": "toy", "endpoint": "counter://here:1", "step": step,
             "poll_interval": "50ms"},
        ],
    }  # fmt: skip
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def test_a_toy_collector_and_a_toy_sink_run_in_the_agent(tmp_path: Path, toys: None) -> None:
    loaded = load_config(_write(tmp_path))
    agent = Agent(loaded, tick_s=0.05)

    async def run() -> None:
        task = asyncio.create_task(agent.run(drain_s=30))
        for _ in range(600):
            await asyncio.sleep(0.05)
            if len(MemorySink.received.get("raw/a/value", [])) >= 10:
                break
        agent.stop()
        await task

    asyncio.run(run())
    a = MemorySink.received["raw/a/value"]
    assert len(a) >= 10
    assert a[:3] == [3.0, 6.0, 9.0]  # the toy's own option (step) reached its collector
    assert MemorySink.received["raw/b/value"][: len(a)] == a
    # The toy's own health details reach /health beside the agent's counters.
    device = agent.health_report()["devices"][0]
    assert device["value"] >= a[-1] and device["polls"] >= len(a)


def test_the_toy_options_are_validated_like_built_in_ones(tmp_path: Path, toys: None) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, step=0))
    (message,) = info.value.problems
    assert "devices[0].step: Input should be greater than or equal to 1" in message
    assert f"{tmp_path / 'agent.yaml'}:" in message


def test_an_unknown_scheme_lists_the_registered_ones(tmp_path: Path, toys: None) -> None:
    path = _write(tmp_path)
    path.write_text(path.read_text(encoding="utf-8").replace("counter://", "nope://"), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (message,) = info.value.problems
    assert "devices[0]: endpoint needs a known scheme" in message
    assert "counter://" in message and "opc.tcp://" in message and "modbus://" in message
