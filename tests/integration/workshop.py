"""Run the demo workshop and an agent against a real InfluxDB, and read back what landed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.config import load_config
from edge_agent.demo.plant import Plant
from edge_agent.demo.servers import DemoServers
from edge_agent.demo.workshop import write_config
from edge_agent.runtime.agent import Agent
from tests.conftest import InfluxServer


@dataclass
class WorkshopRun:
    agent: Agent
    servers: DemoServers
    plant: Plant
    config: dict[str, Any]
    start_ns: int
    end_ns: int


async def run_workshop(
    tmp_path: Path,
    sinks: list[dict[str, Any]],
    wall_s: float,
    speed: float = 30.0,
    seed: int = 3,
    during: Callable[[Agent, DemoServers], Awaitable[None]] | None = None,
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> WorkshopRun:
    servers = await DemoServers.started(seed, speed)
    clock, plant = servers.clock, servers.plant
    try:
        cfg = servers.agent_config(str(tmp_path / "buffer.sqlite3"), sinks)
        if edit is not None:
            edit(cfg)
        loaded = load_config(write_config(tmp_path / "agent.yaml", cfg))
        agent = Agent(loaded, clock)
        start = clock.now_ns()
        task = asyncio.create_task(agent.run(drain_s=120))
        if during is not None:
            await during(agent, servers)
        else:
            await asyncio.sleep(wall_s)
        agent.stop()
        await task
        return WorkshopRun(agent, servers, plant, cfg, start, clock.now_ns())
    finally:
        await servers.stop()


def influx_sink(influx: InfluxServer, db: str, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "type": "influxdb_v1",
        "url": influx.url,
        "database": db,
        "rejected_file": str(tmp_path / "rejected.lp"),
        **extra,
    }


def count_points(influx: InfluxServer, db: str, measurement: str = "/.*/") -> int:
    """Field values stored (each point we write carries one field)."""
    total = 0
    for series in influx.query(f"SELECT count(*) FROM {measurement}", db):
        total += sum(v for v in series["values"][0][1:] if v is not None)
    return total
