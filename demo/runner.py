"""``edge-agent demo``: the demo workshop, an agent on it, and a live terminal view."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.live import Live
from rich.table import Table

from demo.plant import STATE_CODES, Plant
from demo.servers import DemoServers
from demo.workshop import MICROSTOP_S, sinks_from_env, write_config
from edge_agent.config import load_config
from edge_agent.runtime.agent import Agent
from edge_agent.runtime.clock import ScaledClock

log = logging.getLogger(__name__)
_STATE_STYLE = {
    "running": "green",
    "idle": "yellow",
    "down": "red",
    "setup": "cyan",
    "planned_stop": "blue",
}


def _pct(value: Any) -> str:
    return "-" if not isinstance(value, float) or math.isnan(value) else f"{100 * value:.1f}%"


def _alarm_cell(agent: Agent, machine: int, score: float) -> str:
    stage = agent.pipeline.anomaly
    cols = np.flatnonzero(stage.scorer.alarms.active & (stage.machine == machine))
    if cols.shape[0]:
        names = sorted(stage.signals[c].key.split(".", 1)[1] for c in cols.tolist())
        return f"[bold red]{', '.join(names)}[/]"
    return f"{score:.1f}"


def machine_table(agent: Agent, servers: DemoServers, plant: Plant, with_truth: bool = False) -> Table:
    title = f"demo workshop · plant time {servers.plant_s(agent.clock.now_ns()):7.0f} s · x{agent.clock.speed:g}"
    table = Table(title=title)
    for col in (
        "line",
        "machine",
        "state",
        "good",
        "reject",
        "avail.",
        "perf.",
        "qual.",
        "OEE",
        "micro",
        "fail",
        "anomaly",
    ):
        table.add_column(col, justify="left" if col in ("line", "machine", "state") else "right")
    if with_truth:
        table.add_column("true OEE", justify="right")
    table.caption_justify = "left"
    engine = next(iter(agent.pipeline.engines.values()))
    for i, row in enumerate(agent.pipeline.summary()):
        state = STATE_CODES.get(int(row["state"]), "unknown")
        cells = [
            str(row["line"]),
            str(row["machine"]),
            f"[{_STATE_STYLE.get(state, 'white')}]{state}[/]",
            f"{row['good']:.0f}" if not math.isnan(float(row["good"])) else "-",
            f"{row['reject']:.0f}" if not math.isnan(float(row["reject"])) else "-",
            _pct(row["availability"]),
            _pct(row["performance"]),
            _pct(row["quality"]),
            _pct(row["oee"]),
            f"{float(row['microstop_s']):.0f} s",
            f"{float(row['failures']):.0f}",
            _alarm_cell(agent, i, float(row["anomaly"])),
        ]
        if with_truth:
            a, b = int(engine.first_ts[i]), int(engine.accounted[i])
            truth = (
                plant.truth(str(row["machine"]), servers.plant_s(a), servers.plant_s(b), MICROSTOP_S) if b > a else {}
            )
            cells.append(_pct(truth.get("oee")))
        table.add_row(*cells)
    pending = agent.health_report()["buffer"]["pending_points"]
    sinks = ", ".join(
        f"{f.sink.name} {'ok' if f.health.ok else 'DOWN'} ({f.health.written} sent)" for f in agent.forwarders
    )
    sinks = sinks or "none (embedded store only)"
    k = agent.kpis.latest
    kpis = (
        f"workshop (last {agent.loaded.config.kpis.every:g} s): networking {_pct(k.get('networking_rate'))} · "
        f"collection {_pct(k.get('collection_completeness'))} · on cloud {_pct(k.get('device_on_cloud_ratio'))} · "
        f"kWh per good {k.get('energy_per_good_kwh', math.nan):.4f}"
        if k
        else "workshop KPIs: after the first minute"
    )
    table.caption = (
        "since start; anomaly = signals in alarm, else the latest combined score (1 = threshold)\n"
        f"{kpis}\nlocal store: {pending} points · sinks: {sinks}"
    )
    return table


def prepare_workdir(workdir: Path) -> None:
    """The demo starts from an empty local store: a backlog of an earlier demo is not this one's."""
    workdir.mkdir(parents=True, exist_ok=True)
    for leftover in workdir.glob("demo-buffer.sqlite3*"):
        leftover.unlink()


async def run_demo(duration_s: float | None, seed: int, speed: float, workdir: Path, console: Console) -> int:
    servers = await DemoServers.started(seed, speed)
    clock, plant = servers.clock, servers.plant
    try:
        content = servers.agent_config(str((workdir / "demo-buffer.sqlite3").resolve()), sinks_from_env())
        path = write_config(workdir / "demo-agent.yaml", content)
        loaded = load_config(path)
        agent = Agent(loaded, clock)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, agent.stop)
        console.print(
            f"demo workshop: OPC UA at {servers.opcua_endpoint}, "
            f"Modbus TCP at 127.0.0.1:{servers.modbus_port}; config {path}"
        )
        task = asyncio.create_task(agent.run())
        deadline = time.monotonic() + duration_s if duration_s else math.inf
        with Live(
            machine_table(agent, servers, plant),
            console=console,
            refresh_per_second=2,
            transient=False,
        ) as live:
            while not task.done() and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(task), 0.5)
                live.update(machine_table(agent, servers, plant))
        agent.stop()
        await task
        console.print(machine_table(agent, servers, plant, with_truth=True))
        report = agent.health_report()
        console.print(
            f"summary: {sum(d['polls'] for d in report['devices'])} polls, "
            f"{report['buffer']['pending_points']} points in the local store, "
            f"dropped {report['buffer']['dropped'] or 'none'}"
        )
    finally:
        await servers.stop()
    return 0


async def run_plant(seed: int, speed: float, opcua_port: int, modbus_port: int, host: str) -> int:
    """``edge-agent plant``: only the demo workshop's servers (for compose and manual tests)."""
    servers = DemoServers(Plant(seed=seed), ScaledClock(speed=speed), opcua_port, modbus_port, host)
    await servers.start()
    log.warning(
        "demo plant serving OPC UA at %s and Modbus TCP at %s:%d",
        servers.opcua_endpoint,
        host,
        servers.modbus_port,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await servers.stop()
    return 0
