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

from edge_agent.config import load_config
from edge_agent.demo.plant import STATE_CODES, Plant
from edge_agent.demo.servers import DemoServers
from edge_agent.demo.workshop import MICROSTOP_S, sinks_from_env, write_config
from edge_agent.runtime.agent import Agent
from edge_agent.runtime.clock import ScaledClock

log = logging.getLogger(__name__)
#: Seconds between progress lines when the output is not a terminal.
PROGRESS_EVERY_S = 5.0
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


def machine_table(
    agent: Agent,
    servers: DemoServers,
    plant: Plant,
    with_truth: bool = False,
    deadline: float = math.inf,
    lang: str = "en",
) -> Table:
    left = f" · {max(0.0, deadline - time.monotonic()):.0f} s left" if math.isfinite(deadline) else ""
    title = f"demo workshop · plant time {servers.plant_s(agent.clock.now_ns()):7.0f} s · x{agent.clock.speed:g}{left}"
    table = Table(title=title)
    for position, col in enumerate(LABELS.get(lang, LABELS["en"])):
        table.add_column(col, justify="left" if position < 3 else "right")
    if with_truth:
        table.add_column("true OEE", justify="right")
    table.caption_justify = "left"
    engine = next(iter(agent.pipeline.oee.engines.values()))
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


#: Without --duration the plant starts this far back (plant time), so its data lands in Grafana's
#: default range ("last 6 hours") until it runs ahead of the wall clock.
OPEN_ENDED_LEAD_S = 6 * 3600.0


def plant_lead_s(duration_s: float | None, speed: float) -> float:
    """How long before the start of the run plant time starts: so that it ends at the run's end
    when its length is known.

    >>> plant_lead_s(60, 20)
    1200.0
    """
    return float(duration_s * speed) if duration_s else OPEN_ENDED_LEAD_S


LABELS = {
    "en": (
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
    ),
    "zh": (
        "产线",
        "设备",
        "状态",
        "合格品",
        "不良品",
        "时间开动率",
        "性能开动率",
        "合格品率",
        "OEE",
        "短停",
        "故障",
        "异常",
    ),
}


def progress_line(agent: Agent, servers: DemoServers, deadline: float) -> str:
    """One line for a log or a pipe (when the output is not a terminal)."""
    rows = agent.pipeline.summary()
    pbt = sum(float(r["planned_busy_s"]) for r in rows)
    ideal = sum(float(r["ideal_good_s"]) for r in rows)
    report = agent.health_report()
    left = f"{max(0.0, deadline - time.monotonic()):.0f} s left" if math.isfinite(deadline) else "until Ctrl-C"
    return (
        f"plant time {servers.plant_s(agent.clock.now_ns()):.0f} s, {left}: "
        f"{sum(d['polls'] for d in report['devices'])} polls, OEE {_pct(ideal / pbt if pbt else math.nan)}, "
        f"{agent.points_produced} points, {report['buffer']['pending_points']} waiting in the local store"
    )


async def run_demo(
    duration_s: float | None, seed: int, speed: float, workdir: Path, console: Console, lang: str = "en"
) -> int:
    servers = await DemoServers.started(seed, speed, plant_lead_s(duration_s, speed))
    deadline = time.monotonic() + duration_s if duration_s else math.inf
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
        if console.is_terminal:
            with Live(
                machine_table(agent, servers, plant, deadline=deadline, lang=lang),
                console=console,
                refresh_per_second=2,
                transient=False,
            ) as live:
                while not task.done() and time.monotonic() < deadline:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(task), 0.5)
                    live.update(machine_table(agent, servers, plant, deadline=deadline, lang=lang))
        else:  # a pipe or a log: a line every few seconds instead of a live table
            next_line = time.monotonic()
            while not task.done() and time.monotonic() < deadline:
                if time.monotonic() >= next_line:
                    console.print(progress_line(agent, servers, deadline), soft_wrap=True)
                    next_line += PROGRESS_EVERY_S
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(task), 0.5)
        agent.stop()
        await task
        console.print(machine_table(agent, servers, plant, with_truth=True, lang=lang))
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
