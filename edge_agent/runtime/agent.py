"""The agent: one poll loop per device, a pipeline tick, one forwarder per sink.

Who owns what: the event loop owns the pollers, the device health and the health endpoint;
the pipeline, its analytics state and the KPI stage belong to the tick, which runs in a worker
thread (one tick at a time); each forwarder's sender threads own their sink connections.
Batches cross over whole (:class:`~edge_agent.runtime.pipeline.Inbox`, the local store, queues).
On stop, polling ends, the pipeline closes its open OEE windows, and the forwarders drain the
store for up to ``drain_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from collectors.batch import Batch
from collectors.plugin import Collector, CollectorContext
from edge_agent.config import LoadedConfig
from edge_agent.runtime import checkpoint, systemd
from edge_agent.runtime.clock import Clock, WallClock
from edge_agent.runtime.health import serve_health
from edge_agent.runtime.kpi_stage import KpiStage
from edge_agent.runtime.pipeline import Pipeline
from edge_agent.runtime.polling import Backoff, DeviceHealth, DevicePoller, good_samples
from edge_agent.schema import AGENT, AGENT_FIELDS
from edge_agent.sinks.base import SinkContext, make_sink
from edge_agent.sinks.forwarder import Forwarder
from edge_agent.store.buffer import Buffer
from edge_agent.store.catalog import Series

log = logging.getLogger("edge_agent")


def redact_url(url: str) -> str:
    """``url`` without a user name or password (for logs and health)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _sink_row(health: Any) -> dict[str, Any]:
    row = {k: v for k, v in vars(health).items() if k != "latencies_s"}
    latencies = list(health.latencies_s)
    row["latency_p50_s"] = float(np.percentile(latencies, 50)) if latencies else None
    row["latency_p95_s"] = float(np.percentile(latencies, 95)) if latencies else None
    return row


class Agent:
    def __init__(
        self, loaded: LoadedConfig, clock: Clock | None = None, tick_s: float = 0.25, health_every_s: float = 10.0
    ) -> None:
        self.loaded, self.clock, self.tick_s = loaded, clock or WallClock(), tick_s
        cfg = loaded.config
        self.buffer = Buffer(loaded.resolve(cfg.agent.buffer.path), cfg.agent.buffer.max_points)
        self.pipeline = Pipeline(loaded, self.buffer)
        checkpoint.restore(self.buffer, self.pipeline)
        tags = {"site": cfg.agent.site, "workshop": cfg.agent.workshop, "agent": cfg.agent.id}
        self._health_ids = self.buffer.register([Series.of(AGENT, tags, f) for f in AGENT_FIELDS])
        self.kpis = KpiStage(loaded, self.buffer, self.pipeline, self.clock.now_ns)
        sink_context = SinkContext(loaded.path.parent)
        # The first sink is the cloud the adoption KPIs measure.
        self.forwarders = [
            Forwarder(
                self.buffer,
                make_sink(s, sink_context),
                sink_context.resolve(s.rejected_file),
                self.kpis.acknowledged if i == 0 else None,
                s.retry_max,
            )
            for i, s in enumerate(cfg.sinks)
        ]
        self.buffer.forget_sinks_except([f.sink.name for f in self.forwarders])
        context = CollectorContext(
            now_ns=self.clock.now_ns,
            state=self.buffer,
            data_dir=str(self.buffer.path.parent),
            intern_text=self.buffer.intern_text,
        )
        self.collectors: list[Collector] = []
        self.health: list[DeviceHealth] = []
        for dev in cfg.devices:
            plugin = loaded.plugin(dev)
            self.collectors.append(plugin.factory(loaded.profile(dev), loaded.spec(dev), context))
            self.health.append(DeviceHealth(dev.name, redact_url(dev.endpoint)))
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
        self._dropped_in_spell = 0

    # -- device polling ----------------------------------------------------------------------
    def _received(self, index: int, batch: Batch) -> None:
        valid, newest = good_samples(batch)
        if valid:
            self.kpis.shop.received(index, newest, valid)
        self.pipeline.ingest(index, batch)

    def _pollers(self) -> list[DevicePoller]:
        reconnect = self.loaded.config.agent.reconnect
        backoff = Backoff(reconnect.initial, reconnect.max)
        return [
            DevicePoller(
                i,
                collector,
                self.health[i],
                dev.poll_interval,
                dev.timeout,
                self.clock,
                self._received,
                on_down=self.pipeline.outage,
                backoff=backoff,
            )
            for i, (collector, dev) in enumerate(zip(self.collectors, self.loaded.config.devices, strict=True))
        ]

    # -- pipeline ----------------------------------------------------------------------------
    def tick(self, final: bool = False) -> int:
        """One pipeline step (in the tick's thread): analytics, KPIs, then the local store."""
        now = self.clock.now_ns()
        batch = self.pipeline.tick(now, final=final)
        if final or now - self._last_health_ns >= self.health_every_ns:
            batch = Batch.concat([batch, self._health_points(now)])
            self._last_health_ns = now
        kpi = self.kpis.tick(now, len(batch), final)
        self.kpis.shop.produced(len(kpi))
        batch = Batch.concat([batch, kpi])
        self.points_produced += len(batch)
        self._store([*self._unstored, batch], final)
        return len(batch)

    def _store(self, batches: list[Batch], final: bool) -> None:
        """Write held and new points to the local store; hold them in memory while it cannot be
        written (disk full, file locked), up to ``buffer.memory_points``, the oldest dropped and
        counted beyond that; at the end, whatever cannot be stored is counted as dropped."""
        pending = Batch.concat(batches)
        try:
            self.buffer.append(pending)
        except sqlite3.Error as exc:
            limit = self.loaded.config.agent.buffer.memory_points
            if not self._store_failing:
                log.error(
                    "cannot write to the local store %s (%s); holding up to %d points in memory and retrying",
                    self.buffer.path,
                    exc,
                    limit,
                )
            self._store_failing = True
            if final:
                self._drop(pending, "store_unwritable_at_stop", len(pending))
                self._unstored = []
            elif len(pending) > limit:
                self._drop(pending, "store_unwritable", len(pending) - limit)
                self._unstored = [pending.take(slice(len(pending) - limit, None))]
            else:
                self._unstored = [pending]
            return
        if self._store_failing:
            log.warning(
                "the local store accepts writes again; %d held points stored, %d dropped meanwhile",
                len(pending),
                self._dropped_in_spell,
            )
        self._unstored, self._store_failing, self._dropped_in_spell = [], False, 0

    def _drop(self, pending: Batch, reason: str, n: int) -> None:
        """Count dropped points; logged at the first drop of a spell and when it ends (no flood)."""
        self.buffer.count_drop(reason, n)
        if not self._dropped_in_spell:
            log.error(
                "local store unwritable: dropping the oldest held points beyond buffer.memory_points "
                "(counted as %s; see /health)",
                reason,
            )
        self._dropped_in_spell += n

    @property
    def held_points(self) -> int:
        """Points held in memory because the local store cannot be written."""
        return sum(len(b) for b in self._unstored)

    def _last_tick(self) -> None:
        """The final tick, then the analytics checkpoint (both in the tick's thread)."""
        self.tick(final=True)
        try:
            checkpoint.save(self.buffer, self.pipeline, self.clock.now_ns())
        except Exception as exc:  # a full disk must not stop the stop
            log.error("analytics checkpoint not written (%s): the next start begins its windows afresh", exc)

    async def _ticker(self) -> None:
        while not self.stop_event.is_set():
            await _sleep_or_stop(self.stop_event, self.tick_s)
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
        devices = []
        for h, collector in zip(self.health, self.collectors, strict=True):
            row = {k: v for k, v in vars(h).items() if k != "details"}
            with contextlib.suppress(Exception):
                row |= collector.health()
            devices.append(row)
        sinks = [_sink_row(f.health) for f in self.forwarders]
        reasons = self._degraded(devices, sinks, now)
        return {
            "agent": self.loaded.config.agent.id,
            "status": "degraded" if reasons else "ok",
            "reasons": reasons,
            "uptime_s": (now - self.started_ns) / 1e9 if self.started_ns else 0.0,
            "points_produced": self.points_produced,
            "devices": devices,
            "buffer": {
                "pending_points": stats.pending_points,
                "oldest_age_s": (self.clock.now_ns() - stats.oldest_ts) / 1e9 if stats.oldest_ts else 0.0,
                "dropped": stats.dropped,
                "held_in_memory": self.held_points,
                "store_writable": not self._store_failing,
            },
            "sinks": sinks,
            "kpis": self.kpis.latest,
        }

    def _degraded(self, devices: list[dict[str, Any]], sinks: list[dict[str, Any]], now: int) -> list[str]:
        """Why the agent is degraded (``agent.health``): devices down, sinks failing, the store."""
        limits = self.loaded.config.agent.health
        reasons = [
            f"device {d['name']} unreachable for {(now - d['down_since_ns']) / 1e9:.0f} s: {d['last_error']}"
            for d in devices
            if d["down_since_ns"] and now - d["down_since_ns"] > limits.device_down_after * 1e9
        ]
        reasons += [
            f"sink {s['name']} failing for {(now - s['failing_since_ns']) / 1e9:.0f} s: {s['last_error']}"
            for s in sinks
            if s["failing_since_ns"] and now - s["failing_since_ns"] > limits.sink_failing_after * 1e9
        ]
        if self._store_failing:
            reasons.append("the local store cannot be written (disk full or read-only): points are held in memory")
        return reasons

    # -- lifecycle ---------------------------------------------------------------------------
    async def run(self, drain_s: float | None = None) -> None:
        """Run until :meth:`stop`; then write the open OEE windows and the analytics checkpoint, and
        let the sinks drain the store for ``drain_s`` (``agent.drain``) at most: writes still in
        flight then are broken off, their points stay in the store for the next start."""
        drain_s = self.loaded.config.agent.drain if drain_s is None else drain_s
        self.started_ns = time.time_ns()
        server = None
        listen = self.loaded.config.agent.health_listen
        if listen:
            server = await serve_health(listen, self.health_report)
        sink_stop = asyncio.Event()
        pollers = [asyncio.create_task(p.run(), name=f"poll-{p.health.name}") for p in self._pollers()]
        ticker = asyncio.create_task(self._ticker(), name="tick")
        senders = [asyncio.create_task(f.run(sink_stop), name=f"sink-{f.sink.name}") for f in self.forwarders]
        try:
            await self.stop_event.wait()
        finally:
            self.stop_event.set()
            for task in pollers:
                task.cancel()
            await asyncio.gather(*pollers, ticker, return_exceptions=True)
            for c in self.collectors:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(c.close(), 5)
            await asyncio.to_thread(self._last_tick)
            sink_stop.set()
            _, pending = await asyncio.wait(senders, timeout=drain_s) if senders else (set(), set())
            if pending:
                for f in self.forwarders:
                    f.abort()
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                left = self.buffer.stats().pending_points
                log.warning(
                    "stopped with %d points still in the local store; they are sent on the next start",
                    left,
                )
            await asyncio.gather(*(asyncio.to_thread(f.close) for f in self.forwarders))
            # The senders are done and the tick has run its last: the loop may book the last acks.
            self.kpis.take_acknowledgements()
            if server is not None:
                server.close()
            self.final_report = self.health_report()
            self.buffer.close()
            buffer = self.final_report["buffer"]
            log.info(
                "agent stopped: %d points produced this run, %d left in the local store, dropped %s",
                self.points_produced,
                buffer["pending_points"],
                buffer["dropped"] or "none",
            )

    def stop(self) -> None:
        self.stop_event.set()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def pid_file(loaded: LoadedConfig) -> Path:
    """Where a running agent writes its process id (beside its local store), for ``reload``."""
    return loaded.resolve(loaded.config.agent.buffer.path).parent / "agent.pid"


def run_forever(loaded: LoadedConfig) -> int:
    """``edge-agent run``: until SIGTERM or SIGINT; exit code 0 after a clean flush.

    SIGHUP (``edge-agent reload``) re-reads the configuration file. A valid one replaces the
    running agent: it stops as at shutdown (open OEE windows written, analytics checkpoint kept,
    sinks drained for ``agent.drain``; what they did not send stays in the local store) and an
    agent on the new configuration starts on the same store. An invalid one is refused with every
    problem logged, and the running agent carries on.
    """
    import signal  # noqa: PLC0415

    from edge_agent.config import load_config  # noqa: PLC0415
    from edge_agent.config.yaml_source import ConfigError  # noqa: PLC0415

    async def main() -> None:
        current = loaded
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        pinger = asyncio.create_task(systemd.watchdog(done))
        try:
            await run_configs(current, loop)
        finally:
            done.set()
            await pinger

    async def run_configs(current: LoadedConfig, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            for warning in current.warnings:
                log.warning("%s", warning)
            agent = Agent(current)
            pid = pid_file(current)
            with contextlib.suppress(OSError):
                pid.write_text(f"{os.getpid()}\n", encoding="utf-8")
            replacement: list[LoadedConfig] = []

            def reload(agent: Agent = agent, path: Path = current.path, into: list[LoadedConfig] = replacement) -> None:
                try:
                    fresh = load_config(path)
                except ConfigError as exc:
                    log.error(
                        "reload refused, the running configuration stays: %s has %d problems:\n%s",
                        path,
                        len(exc.problems),
                        "\n".join(exc.problems),
                    )
                    return
                log.info("reloading %s: stopping the running agent, then starting on the new configuration", path)
                systemd.notify("RELOADING=1")
                into.append(fresh)
                agent.stop()

            def stop(agent: Agent = agent) -> None:
                systemd.notify("STOPPING=1")
                agent.stop()

            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop)
            loop.add_signal_handler(signal.SIGHUP, reload)
            log.info(
                "agent %s started: %d devices, %d sinks",
                current.config.agent.id,
                len(agent.collectors),
                len(agent.forwarders),
            )
            running = asyncio.create_task(agent.run())
            await asyncio.sleep(0)
            systemd.notify(f"READY=1\nSTATUS=polling {len(agent.collectors)} devices")
            await running
            if not replacement:
                with contextlib.suppress(OSError):
                    pid.unlink()
                return
            current = replacement[-1]

    asyncio.run(main())
    return 0


__all__ = ["Agent", "pid_file", "redact_url", "run_forever"]
