"""The agent: one poll loop per device, a pipeline tick, one forwarder per sink.

A device that cannot be reached is logged once per change of state and retried with
exponential backoff; it never stalls the other devices. On stop, polling ends, the pipeline
closes its open OEE windows, and the forwarders drain the store for up to ``drain_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from collectors.batch import QUALITY_GOOD, Batch
from collectors.modbus.client import ModbusCollector, ModbusLink
from collectors.opcua.client import OpcUaCollector
from collectors.profile import ModbusProfile, OpcUaProfile
from edge_agent.buffer import Buffer
from edge_agent.clock import Clock, WallClock
from edge_agent.config import InfluxV1Sink, LoadedConfig
from edge_agent.forwarder import Forwarder
from edge_agent.kpi_stage import KpiStage
from edge_agent.pipeline import Pipeline
from edge_agent.schema import AGENT, AGENT_FIELDS
from edge_agent.sinks.base import Sink
from edge_agent.sinks.influx_v1 import InfluxV1
from edge_agent.sinks.influx_v2 import InfluxV2
from edge_agent.sinks.line_protocol import SeriesTable, series_key

log = logging.getLogger("edge_agent")

Collector = ModbusCollector | OpcUaCollector


@dataclass
class DeviceHealth:
    name: str
    endpoint: str
    connected: bool = False
    last_ok_ns: int = 0
    polls: int = 0
    failures: int = 0
    last_error: str = ""


def make_sink(cfg: Any) -> Sink:
    return InfluxV1(cfg) if isinstance(cfg, InfluxV1Sink) else InfluxV2(cfg)


class Agent:
    def __init__(
        self, loaded: LoadedConfig, clock: Clock | None = None, tick_s: float = 0.25, health_every_s: float = 10.0
    ) -> None:
        self.loaded, self.clock, self.tick_s = loaded, clock or WallClock(), tick_s
        cfg = loaded.config
        self.buffer = Buffer(loaded.resolve(cfg.agent.buffer.path), cfg.agent.buffer.max_points)
        self.pipeline = Pipeline(loaded, self.buffer)
        agent_key = series_key(AGENT, {"site": cfg.agent.site, "workshop": cfg.agent.workshop, "agent": cfg.agent.id})
        self._health_ids = self.buffer.register([(agent_key, f) for f in AGENT_FIELDS])
        self.kpis = KpiStage(loaded, self.buffer, self.pipeline, self.clock.now_ns)
        self.series = SeriesTable(self.buffer.series_table())
        # The first sink is the cloud the adoption KPIs measure.
        self.forwarders = [
            Forwarder(
                self.buffer,
                make_sink(s),
                self.series,
                loaded.resolve(s.rejected_file),
                self.kpis.acknowledged if i == 0 else None,
            )
            for i, s in enumerate(cfg.sinks)
        ]
        self.buffer.forget_sinks_except([f.sink.name for f in self.forwarders])
        links: dict[tuple[str, int], ModbusLink] = {}
        self.collectors: list[Collector] = []
        self.health: list[DeviceHealth] = []
        for dev in cfg.devices:
            profile = loaded.profiles[dev.profile]
            url = urlsplit(dev.endpoint)
            host, port = url.hostname or "", url.port or 0
            collector: Collector
            if isinstance(profile, ModbusProfile):
                link = links.setdefault((host, port), ModbusLink(host, port, dev.timeout))
                collector = ModbusCollector(profile, link, dev.unit_id, self.clock.now_ns)
            else:
                assert isinstance(profile, OpcUaProfile)
                collector = OpcUaCollector(profile, dev.endpoint, dev.params, self.clock.now_ns, dev.timeout)
            self.collectors.append(collector)
            self.health.append(DeviceHealth(dev.name, dev.endpoint))
        self.stop_event = asyncio.Event()
        self.started_ns = 0
        self.final_report: dict[str, Any] | None = None
        #: Points the pipeline handed to the local store since start.
        self.points_produced = 0
        #: How often the agent writes its own health points, in clock time.
        self.health_every_ns = int(health_every_s * 1e9)
        self._last_health_ns = 0
        self._unstored: list[Batch] = []
        self._store_failing = False

    # -- device polling ----------------------------------------------------------------------
    async def _poll(self, index: int) -> None:
        dev = self.loaded.config.devices[index]
        collector, health = self.collectors[index], self.health[index]
        backoff, reported = 0.5, ""
        next_due = self.clock.now_ns()
        while not self.stop_event.is_set():
            try:
                if not health.connected:
                    await asyncio.wait_for(collector.connect(), dev.timeout * 2 + 1)
                    health.connected = True
                    log.info("device %s connected (%s)", dev.name, dev.endpoint)
                    reported, backoff = "", 0.5
                batch = await asyncio.wait_for(collector.collect(), dev.timeout * 2 + 1)
            except Exception as exc:  # one device's failure never stops the others
                health.failures += 1
                was_connected, health.connected = health.connected, False
                message = f"{exc.__class__.__name__}: {exc}"
                health.last_error = message
                if was_connected or message != reported:
                    expected = isinstance(exc, ConnectionError | TimeoutError | OSError | LookupError)
                    log.warning(
                        "device %s unreachable, retrying with backoff: %s", dev.name, message, exc_info=not expected
                    )
                    reported = message
                with contextlib.suppress(Exception):
                    await collector.close()
                await self._sleep_wall(backoff * (0.8 + 0.4 * np.random.random()))
                backoff = min(backoff * 2, 30.0)
                next_due = self.clock.now_ns()
                continue
            health.polls += 1
            health.last_ok_ns = self.clock.now_ns()
            if len(batch):
                good = int(np.count_nonzero(batch.quality == QUALITY_GOOD))
                self.kpis.shop.received(index, int(batch.ts.max()), good)
            if collector.last_error and collector.last_error != health.last_error:
                log.warning(
                    "device %s answered with errors (points kept with a bad quality flag): %s",
                    dev.name,
                    collector.last_error,
                )
            health.last_error = collector.last_error or ""
            self.pipeline.ingest(index, batch)
            next_due += int(dev.poll_interval * 1e9)
            now = self.clock.now_ns()
            next_due = max(next_due, now)
            await self._sleep_clock((next_due - now) / 1e9)

    async def _sleep_wall(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_event.wait(), seconds)

    async def _sleep_clock(self, seconds: float) -> None:
        await self._sleep_wall(seconds / self.clock.speed)

    # -- pipeline ----------------------------------------------------------------------------
    def tick(self, final: bool = False) -> int:
        now = self.clock.now_ns()
        batch = self.pipeline.tick(now, final=final)
        if final or now - self._last_health_ns >= self.health_every_ns:
            batch = Batch.concat([batch, self._health_points(now)])
            self._last_health_ns = now
        kpi = self.kpis.tick(now, len(batch), final)
        self.kpis.shop.produced(len(kpi))
        batch = Batch.concat([batch, kpi])
        self.points_produced += len(batch)
        pending = Batch.concat([*self._unstored, batch])
        try:
            self.buffer.append(pending)
        except sqlite3.Error as exc:
            # Keep the points in memory and try again next tick (disk full, file locked, ...).
            self._unstored = [pending]
            if not self._store_failing:
                log.error(
                    "cannot write to the local store %s (%s); holding %d points in memory and retrying",
                    self.buffer.path,
                    exc,
                    len(pending),
                )
            self._store_failing = True
            return len(batch)
        if self._store_failing:
            log.warning("the local store accepts writes again; %d held points stored", len(pending))
        self._unstored, self._store_failing = [], False
        return len(batch)

    async def _ticker(self) -> None:
        while not self.stop_event.is_set():
            await self._sleep_wall(self.tick_s)
            await asyncio.to_thread(self.tick)

    # -- health ------------------------------------------------------------------------------
    def _health_points(self, now: int) -> Batch:
        """The agent's own state as points (measurement ``agent``): scope, connections, backlog."""
        stats = self.buffer.stats()
        values = {
            "devices_in_scope": len(self.health),
            "devices_connected": sum(h.connected for h in self.health),
            "buffer_points": stats.pending_points,
            "buffer_oldest_age_s": (now - stats.oldest_ts) / 1e9 if stats.oldest_ts else 0.0,
            "dropped_points": sum(stats.dropped.values()),
        }
        return Batch.of(now, self._health_ids, [float(values[f]) for f in AGENT_FIELDS])

    def health_report(self) -> dict[str, Any]:
        """Devices, local store and sinks; after :meth:`run` ends, the report at the end."""
        if self.final_report is not None:
            return self.final_report
        stats = self.buffer.stats()
        now = time.time_ns()
        return {
            "agent": self.loaded.config.agent.id,
            "uptime_s": (now - self.started_ns) / 1e9 if self.started_ns else 0.0,
            "devices": [vars(h) for h in self.health],
            "buffer": {
                "pending_points": stats.pending_points,
                "oldest_age_s": (self.clock.now_ns() - stats.oldest_ts) / 1e9 if stats.oldest_ts else 0.0,
                "dropped": stats.dropped,
            },
            "sinks": [{k: v for k, v in vars(f.health).items() if k != "latencies_s"} for f in self.forwarders],
            "kpis": self.kpis.latest,
        }

    async def _serve_health(self, listen: str) -> asyncio.AbstractServer:
        host, _, port = listen.rpartition(":")

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.readline(), 5)
                body = json.dumps(self.health_report()).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\nConnection: close\r\n\r\n"
                    + body
                )
                await writer.drain()
            writer.close()

        return await asyncio.start_server(answer, host or "127.0.0.1", int(port))

    # -- lifecycle ---------------------------------------------------------------------------
    async def run(self, drain_s: float = 15.0) -> None:
        """Run until :meth:`stop`; then flush OEE windows and drain the sinks."""
        self.started_ns = time.time_ns()
        server = None
        listen = self.loaded.config.agent.health_listen
        if listen:
            server = await self._serve_health(listen)
        sink_stop = asyncio.Event()
        pollers = [asyncio.create_task(self._poll(i), name=f"poll-{i}") for i in range(len(self.collectors))]
        ticker = asyncio.create_task(self._ticker(), name="tick")
        senders = [asyncio.create_task(f.run(sink_stop), name=f"sink-{f.sink.name}") for f in self.forwarders]
        try:
            await self.stop_event.wait()
        finally:
            self.stop_event.set()
            await asyncio.gather(*pollers, ticker, return_exceptions=True)
            for c in self.collectors:
                with contextlib.suppress(Exception):
                    await c.close()
            await asyncio.to_thread(self.tick, True)
            sink_stop.set()
            _, pending = await asyncio.wait(senders, timeout=drain_s) if senders else (set(), set())
            for task in pending:
                task.cancel()
            if pending:
                left = self.buffer.stats().pending_points
                log.warning(
                    "stopped with %d points still in the local store; they are sent on the next start",
                    left,
                )
            for f in self.forwarders:
                f.close()
            if server is not None:
                server.close()
            self.final_report = self.health_report()
            self.buffer.close()

    def stop(self) -> None:
        self.stop_event.set()


def run_forever(loaded: LoadedConfig) -> int:
    """``edge-agent run``: until SIGTERM or SIGINT; exit code 0 after a clean flush."""
    import signal  # noqa: PLC0415

    async def main() -> None:
        agent = Agent(loaded)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, agent.stop)
        log.info(
            "agent %s started: %d devices, %d sinks",
            loaded.config.agent.id,
            len(agent.collectors),
            len(agent.forwarders),
        )
        await agent.run()

    asyncio.run(main())
    return 0
