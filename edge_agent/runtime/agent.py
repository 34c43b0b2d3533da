"""The agent: one poll loop per device, a pipeline tick, one forwarder per sink, all supervised.

Who owns what: the event loop owns the pollers, the device health and the health endpoint;
the pipeline, its analytics state and the KPI stage belong to the tick thread (one thread: the
ticks and the periodic checkpoint run there, one at a time); each forwarder's sender threads own
their sink connections. Batches cross over whole (:class:`~edge_agent.runtime.pipeline.Inbox`, the
local store, queues). Every long-running task runs under the
:class:`~edge_agent.runtime.supervisor.Supervisor`: a failure is logged, counted, shown in
``/health``, and the task restarts. On stop, polling ends, the pipeline closes its open OEE
windows, and the forwarders drain the store for up to ``drain_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import functools
import json
import logging
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent import __version__
from edge_agent.collectors.batch import QUALITY_NOT_FINITE, Batch
from edge_agent.collectors.endpoints import split_user_info
from edge_agent.collectors.plugin import Collector, CollectorContext
from edge_agent.config import ConfigError, LoadedConfig, load_config
from edge_agent.runtime import checkpoint, systemd
from edge_agent.runtime.clock import Clock, ClockWatch, WallClock
from edge_agent.runtime.forwarder import LATENCY_BUCKETS_S, Forwarder
from edge_agent.runtime.health import serve_health
from edge_agent.runtime.kpi_stage import KpiStage
from edge_agent.runtime.logs import Throttled
from edge_agent.runtime.memory import GIVE_BACK_EVERY_S, give_back
from edge_agent.runtime.pipeline import Pipeline
from edge_agent.runtime.polling import Backoff, DeviceHealth, DevicePoller
from edge_agent.runtime.status_page import StatusView
from edge_agent.runtime.status_page import render as render_status
from edge_agent.runtime.supervisor import Supervisor
from edge_agent.schema import AGENT, AGENT_FIELDS
from edge_agent.sinks.base import SinkContext, make_sink
from edge_agent.store.catalog import Series
from edge_agent.store.local import LocalStore

log = logging.getLogger("edge_agent")

#: A tick that has not completed for this long (s) makes the agent degraded (it hangs).
TICK_STALLED_S = 60.0


def redact_url(url: str) -> str:
    """``url`` without a user name or password (for logs and health)."""
    return split_user_info(url)[0]


def _sink_row(health: Any) -> dict[str, Any]:
    row = {k: v for k, v in vars(health).items() if k not in ("latencies_s", "latency_counts", "latency_sum_s")}
    latencies = list(health.latencies_s)
    row["latency_p50_s"] = float(np.percentile(latencies, 50)) if latencies else None
    row["latency_p95_s"] = float(np.percentile(latencies, 95)) if latencies else None
    row["latency_histogram"] = {
        "le_s": list(LATENCY_BUCKETS_S),
        "counts": list(health.latency_counts),
        "sum_s": health.latency_sum_s,
    }
    return row


class Agent:
    def __init__(
        self, loaded: LoadedConfig, clock: Clock | None = None, tick_s: float = 0.25, health_every_s: float = 10.0
    ) -> None:
        self.loaded, self.clock, self.tick_s = loaded, clock or WallClock(), tick_s
        cfg = loaded.config
        store = cfg.agent.buffer
        self.store = LocalStore(loaded.resolve(store.path), store.max_points, store.synchronous)
        points, series, state = self.store.points, self.store.series, self.store.state
        self.pipeline = Pipeline(loaded, series, inbox_points=store.memory_points)
        checkpoint.restore(state, self.pipeline)
        tags = {"site": cfg.agent.site, "workshop": cfg.agent.workshop, "agent": cfg.agent.id}
        # The fleet contract: which version runs which configuration (docs/schema.md, agent).
        fleet = {**tags, "version": __version__, "config": loaded.fingerprint()}
        self._health_ids = series.register([Series.of(AGENT, fleet, f) for f in AGENT_FIELDS])
        self.started_ns, self.started_wall_ns = self.clock.now_ns(), time.time_ns()
        self.kpis = KpiStage(loaded, points, series, state, self.pipeline, self.clock.now_ns)
        sink_context = SinkContext(loaded.path.parent, self.store.path.parent, loaded.config.agent.id)
        # The first sink is the cloud the adoption KPIs measure.
        self.forwarders = [
            Forwarder(
                points,
                series.catalog,
                make_sink(s, sink_context),
                self.kpis.acknowledged if i == 0 else None,
                s.retry_max,
            )
            for i, s in enumerate(cfg.sinks)
        ]
        points.forget_sinks_except([f.sink.name for f in self.forwarders])
        context = CollectorContext(
            now_ns=self.clock.now_ns,
            state=state,
            data_dir=str(self.store.path.parent),
            intern_text=series.intern_text,
            count_drop=self.pipeline.inbox.drop,
        )
        self.collectors: list[Collector] = []
        self.health: list[DeviceHealth] = []
        for i, dev in enumerate(cfg.devices):
            plugin = loaded.plugin(dev)
            own = dataclasses.replace(context, deliver=functools.partial(self._received, i))
            self.collectors.append(plugin.factory(loaded.profile(dev), loaded.spec(dev), own))
            self.health.append(DeviceHealth(dev.name, redact_url(dev.endpoint)))
        self.stop_event = asyncio.Event()
        #: Set when the agent stops only to start again on the same configuration (a damaged store).
        self.restart_requested = False
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
        self.supervisor = Supervisor()
        #: The tick's own thread: ticks and checkpoints run there, one at a time.
        self._tick_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tick")
        #: When the latest tick ended (wall clock, UTC ns; 0 before the first).
        self.last_tick_ns = 0
        step = min((d.poll_interval for d in cfg.devices), default=1.0)
        self.clock_watch = ClockWatch(self.clock, max(int(step * 1e9), 1_000_000))
        self._losses = Throttled(log)
        #: What the status page shows of the tick's state (replaced whole by the tick thread).
        self.status_view = StatusView()
        #: How far each OEE window grid was written, as last recorded in the store.
        self._written_said: dict[str, int] = {}

    # -- device polling ----------------------------------------------------------------------
    def _received(self, index: int, batch: Batch) -> None:
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
                on_lost=self.pipeline.inbox.drop,
            )
            for i, (collector, dev) in enumerate(zip(self.collectors, self.loaded.config.devices, strict=True))
        ]

    # -- pipeline ----------------------------------------------------------------------------
    def tick(self, final: bool = False) -> int:
        """One pipeline step (in the tick's thread): analytics, KPIs, then the local store.

        The readings taken from the inbox are stored even when the analytics fail on them (the
        failure is raised after, for the supervisor): a bug or a poisoned model never costs data.
        Values that are not finite are stored flagged (quality ``not_finite``), never as numbers.
        """
        now = self.clock.now_ns()
        raw = self.pipeline.take_readings()
        self.kpis.shop.received_many(*self.pipeline.received)
        self._count_losses(self.pipeline.inbox.take_drops())
        try:
            with np.errstate(all="ignore"):
                batch = self._derive(raw, now, final)
        except BaseException:
            self._store([*self._unstored, raw], final)
            raise
        self.points_produced += len(batch)
        written = self.pipeline.oee.written_until
        state = {checkpoint.WRITTEN_KEY: json.dumps(written, sort_keys=True)} if written != self._written_said else None
        if self._store([*self._unstored, batch], final, state):
            self._written_said = dict(written)
        self.last_tick_ns = time.time_ns()
        if self.last_tick_ns - self.status_view.taken_ns >= 1_000_000_000 or final:
            self._publish_status()
        return len(batch)

    def _publish_status(self) -> None:
        """Hand the status page a new view (one new object: the page reads whichever is current)."""
        pipeline, layout = self.pipeline, self.pipeline.layout
        texts = self.store.series.catalog().texts
        self.status_view = StatusView(
            self.last_tick_ns,
            pipeline.latest.snapshot(layout.device_tables, layout.labels, texts),
            pipeline.anomaly.open_alarms(),
            pipeline.oee.current(),
        )

    def _derive(self, raw: Batch, now: int, final: bool) -> Batch:
        batch = self.pipeline.process(raw, now, final=final)
        if final or now - self._last_health_ns >= self.health_every_ns:
            batch = Batch.concat([batch, self._health_points(now)])
            self._last_health_ns = now
        kpi = self.kpis.tick(now, len(batch), final)
        self.kpis.shop.produced(len(kpi))
        return Batch.concat([batch, kpi]).flag_not_finite(QUALITY_NOT_FINITE)

    def _count_losses(self, dropped: dict[str, int]) -> None:
        """Points that never reached the tick (inbox full, a failed hand-over): counted, logged."""
        for reason, points in dropped.items():
            self.store.points.count_drop(reason, points)
            self._losses.event(
                logging.ERROR,
                "%d points dropped before the tick took them (%s): the tick is failing or cannot keep up; see /health",
                points,
                reason,
            )

    def _store(self, batches: list[Batch], final: bool, state: dict[str, str] | None = None) -> bool:
        """Write held and new points to the local store; hold them in memory while it cannot be
        written (disk full, file locked), up to ``buffer.memory_points``, the oldest dropped and
        counted beyond that; at the end, whatever cannot be stored is counted as dropped.
        True when they were written."""
        pending = Batch.concat(batches)
        try:
            self.store.points.append(pending, state)
        except sqlite3.Error as exc:
            limit = self.loaded.config.agent.buffer.memory_points
            if not self._store_failing:
                log.error(
                    "cannot write to the local store %s (%s); holding up to %d points in memory and retrying",
                    self.store.path,
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
            return False
        if self._store_failing:
            log.warning(
                "the local store accepts writes again; %d held points stored, %d dropped meanwhile",
                len(pending),
                self._dropped_in_spell,
            )
        self._unstored, self._store_failing, self._dropped_in_spell = [], False, 0
        return True

    def _drop(self, pending: Batch, reason: str, n: int) -> None:
        """Count dropped points; logged at the first drop of a spell and when it ends (no flood)."""
        self.store.points.count_drop(reason, n)
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

    def _checkpoint(self) -> None:
        """Write the analytics checkpoint (in the tick's thread, between two ticks)."""
        checkpoint.save(self.store.state, self.pipeline, self.clock.now_ns())

    def _last_tick(self) -> None:
        """The final tick, then the analytics checkpoint (both in the tick's thread)."""
        try:
            self.tick(final=True)
        finally:
            try:
                self._checkpoint()
            except Exception as exc:  # a full disk must not stop the stop
                log.error("analytics checkpoint not written (%s): the next start begins its windows afresh", exc)

    async def _in_tick_thread(self, work: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._tick_thread, work)

    async def _ticker(self) -> None:
        given_back = time.monotonic()
        while not self.stop_event.is_set():
            await _sleep_or_stop(self.stop_event, self.tick_s)
            step = self.clock_watch.check()
            if step is not None:
                log.warning(
                    "the wall clock stepped by %+.3f s (NTP or an operator): polls keep their schedule; "
                    "readings are stamped with the new time",
                    step,
                )
            if self.store.damaged and not self.restart_requested:
                self.restart_requested = True
                self.stop()
                return
            await self._in_tick_thread(self.tick)
            if time.monotonic() - given_back >= GIVE_BACK_EVERY_S:
                given_back = time.monotonic()
                await self._in_tick_thread(give_back)

    async def _checkpointer(self) -> None:
        every = self.loaded.config.analytics.checkpoint_every
        if every <= 0:
            return
        while not self.stop_event.is_set():
            await _sleep_or_stop(self.stop_event, every)
            if not self.stop_event.is_set():
                await self._in_tick_thread(self._checkpoint)

    def status_page(self) -> str:
        """The status page (``GET /``): the health report and the tick's latest view."""
        return render_status(self.health_report(), self.status_view)

    async def _serve_health(self, listen: str) -> None:
        server = await serve_health(listen, self.health_report, self.status_page)
        try:
            await server.serve_forever()
        finally:
            server.close()

    # -- health ------------------------------------------------------------------------------
    def _health_points(self, now: int) -> Batch:
        """The agent's own state as points (measurement ``agent``): scope, connections, backlog."""
        stats = self.store.points.stats()
        values = {
            "devices_in_scope": len(self.health),
            "devices_connected": sum(h.connected for h in self.health),
            "buffer_points": stats.pending_points,
            "buffer_oldest_age_s": (now - stats.oldest_ts) / 1e9 if stats.oldest_ts else 0.0,
            "dropped_points": sum(stats.dropped.values()),
            "devices_down": sum(not h.connected for h in self.health),
            "uptime_s": (now - self.started_ns) / 1e9,
            # Acknowledgements are stamped by the wall clock: their age is real seconds.
            "last_ack_age_s": (time.time_ns() - (self._last_ack_ns() or self.started_wall_ns)) / 1e9,
        }
        return Batch.of(now, self._health_ids, [float(values[f]) for f in AGENT_FIELDS])

    def _last_ack_ns(self) -> int:
        """When the first sink (the cloud of the adoption KPIs) last acknowledged points (0: never)."""
        return self.forwarders[0].health.last_ack_ns if self.forwarders else 0

    def health_report(self) -> dict[str, Any]:
        """Devices, tasks, local store and sinks (``docs/health.md``); after :meth:`run` ends, the
        report at the end."""
        if self.final_report is not None:
            return self.final_report
        now = time.time_ns()
        devices = []
        for h, collector in zip(self.health, self.collectors, strict=True):
            row = dict(vars(h))
            with contextlib.suppress(Exception):
                row |= collector.health()
            devices.append(row)
        sinks = [_sink_row(f.health) for f in self.forwarders]
        store = self._store_report()
        reasons = self._degraded(devices, sinks, store, now)
        return {
            "agent": self.loaded.config.agent.id,
            "status": "degraded" if reasons else "ok",
            "reasons": reasons,
            "uptime_s": (now - self.started_ns) / 1e9 if self.started_ns else 0.0,
            "points_produced": self.points_produced,
            "devices": devices,
            "tasks": self.supervisor.report(),
            "tick": {
                "last_ns": self.last_tick_ns,
                "age_s": (now - self.last_tick_ns) / 1e9 if self.last_tick_ns else None,
            },
            "clock": {"steps": self.clock_watch.steps, "last_step_s": self.clock_watch.last_step_s},
            "buffer": store,
            "sinks": sinks,
            "kpis": self.kpis.latest,
        }

    def _store_report(self) -> dict[str, Any]:
        try:
            stats = self.store.points.stats()
            damaged = self.store.damage_notices()
        except sqlite3.Error as exc:
            return {"readable": False, "error": str(exc), "store_writable": False, "damaged": []}
        return {
            "path": str(self.store.path),
            "pending_points": stats.pending_points,
            "oldest_age_s": (self.clock.now_ns() - stats.oldest_ts) / 1e9 if stats.oldest_ts else 0.0,
            "dropped": stats.dropped,
            "set_aside": stats.set_aside,
            "held_in_memory": self.held_points,
            "store_writable": not self._store_failing,
            "damaged": damaged,
        }

    def _degraded(
        self, devices: list[dict[str, Any]], sinks: list[dict[str, Any]], store: dict[str, Any], now: int
    ) -> list[str]:
        """Why the agent is degraded (``agent.health``): devices down, tasks failing, sinks failing,
        the store."""
        limits = self.loaded.config.agent.health
        reasons = [
            f"device {d['name']} unreachable for {(now - d['down_since_ns']) / 1e9:.0f} s: {d['last_error']}"
            for d in devices
            if d["down_since_ns"] and now - d["down_since_ns"] > limits.device_down_after * 1e9
        ]
        reasons += self.supervisor.reasons(now)
        if self.last_tick_ns and now - self.last_tick_ns > TICK_STALLED_S * 1e9 and self.started_ns:
            reasons.append(f"the tick has not completed for {(now - self.last_tick_ns) / 1e9:.0f} s")
        reasons += [
            f"sink {s['name']} failing for {(now - s['failing_since_ns']) / 1e9:.0f} s: {s['last_error']}"
            for s in sinks
            if s["failing_since_ns"] and now - s["failing_since_ns"] > limits.sink_failing_after * 1e9
        ]
        aside = store.get("set_aside", {})
        refusals = {s["name"]: s.get("last_refusal", "") for s in sinks}
        reasons += [
            f"{points} points set aside for sink {sink} (dead letter)"
            + (f"; the latest refusal: {refusals[sink]}" if refusals.get(sink) else "")
            for sink, points in aside.items()
        ]
        if not store.get("store_writable", True):
            reasons.append("the local store cannot be written (disk full or read-only): points are held in memory")
        if not store.get("readable", True):
            reasons.append(f"the local store cannot be read: {store['error']}")
        for notice in store.get("damaged", []):
            lost = notice["lost_points"]
            reasons.append(
                f"the local store was damaged and set aside as {notice['file']} "
                f"({'an unknown number of' if lost is None else lost} points lost): inspect it, then delete or move it"
            )
        return reasons

    # -- lifecycle ---------------------------------------------------------------------------
    async def run(self, drain_s: float | None = None) -> None:
        """Run until :meth:`stop`; then write the open OEE windows and the analytics checkpoint, and
        let the sinks drain the store for ``drain_s`` (``agent.drain``) at most: writes still in
        flight then are broken off, their points stay in the store for the next start."""
        drain_s = self.loaded.config.agent.drain if drain_s is None else drain_s
        self.started_ns = self.last_tick_ns = time.time_ns()
        give_back()  # what building the layout and the registry took and let go
        supervisor = self.supervisor
        listen = self.loaded.config.agent.health_listen
        if listen:
            supervisor.start("health", lambda: self._serve_health(listen))
        polls = []
        for p in self._pollers():
            supervisor.start(f"poll-{p.health.name}", p.run)
            polls.append(f"poll-{p.health.name}")
        supervisor.start("tick", self._ticker)
        supervisor.start("checkpoint", self._checkpointer)
        sink_stop = asyncio.Event()
        senders = [supervisor.start(f"sink-{f.sink.name}", _forwarding(f, sink_stop)) for f in self.forwarders]
        try:
            await self.stop_event.wait()
        finally:
            await self._shut_down(polls, senders, sink_stop, drain_s)

    async def _shut_down(
        self, polls: list[str], senders: list[asyncio.Task[None]], sink_stop: asyncio.Event, drain_s: float
    ) -> None:
        self.stop_event.set()
        supervisor = self.supervisor
        await supervisor.stop(polls)
        for c in self.collectors:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(c.close(), 5)
        await supervisor.stop(["tick", "checkpoint"])
        try:
            await self._in_tick_thread(self._last_tick)
        except Exception as exc:  # the stop goes on: what was taken is stored (tick), the rest counted
            log.exception("the final tick failed: %s", exc)
        sink_stop.set()
        _, pending = await asyncio.wait(senders, timeout=drain_s) if senders else (set(), set())
        if pending:
            for f in self.forwarders:
                f.abort()
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            with contextlib.suppress(sqlite3.Error):
                log.warning(
                    "stopped with %d points still in the local store; they are sent on the next start",
                    self.store.points.stats().pending_points,
                )
        await asyncio.gather(*(asyncio.to_thread(f.close) for f in self.forwarders))
        # The senders are done and the tick has run its last: the loop may book the last acks.
        self.kpis.take_acknowledgements()
        report = self.health_report()
        await supervisor.stop()
        self._tick_thread.shutdown(wait=True)
        self.final_report = report
        self.store.close()
        buffer = report["buffer"]
        log.info(
            "agent stopped: %d points produced this run, %d left in the local store, dropped %s",
            self.points_produced,
            buffer.get("pending_points", -1),
            buffer.get("dropped") or "none",
        )

    def stop(self) -> None:
        self.stop_event.set()


def _forwarding(forwarder: Forwarder, stop: asyncio.Event) -> Callable[[], Awaitable[None]]:
    """The forwarder's task, started afresh after a failure."""
    return lambda: forwarder.run(stop)


async def _until(condition: Callable[[], bool], step_s: float = 0.05) -> None:
    """Wait until ``condition`` holds (checked every ``step_s``)."""
    while not condition():  # noqa: ASYNC110 - the devices' health has no event to wait on
        await asyncio.sleep(step_s)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def pid_file(loaded: LoadedConfig) -> Path:
    """Where a running agent writes its process id (beside its local store), for ``reload``."""
    return loaded.resolve(loaded.config.agent.buffer.path).parent / "agent.pid"


class PidFile:
    """The running agent's process id, in a file it holds locked (``flock``) while it runs, so
    ``edge-agent reload`` can tell a live agent from a stale file left by a crash."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def claim(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            log.warning("cannot write the pid file %s (%s): edge-agent reload will not find this agent", self.path, exc)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            log.warning("another agent holds %s: edge-agent reload signals that one, not this one", self.path)
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self._fd)
            self._fd = None


def running_agent(path: Path) -> int:
    """The process id of the agent that holds ``path`` (its pid file); raises LookupError with
    the reason when no running agent does (no file, a stale file, a process that is not an agent)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise LookupError(f"no pid file {path} ({exc.strerror}): is the agent running on this configuration?") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            pid_text = os.read(fd, 64).decode("ascii", "replace").strip()
        else:
            raise LookupError(f"{path} is stale: no agent holds it (the agent that wrote it has exited)")
    finally:
        os.close(fd)
    try:
        pid = int(pid_text)
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except (ValueError, OSError) as exc:
        raise LookupError(f"{path} names no running process ({exc})") from None
    if "edge-agent" not in command and "edge_agent" not in command:
        raise LookupError(f"{path} names process {pid}, which is not an edge agent ({command.strip()[:80]!r})")
    return pid


class Lifecycle:
    """Signals of the running agent: SIGTERM/SIGINT stop it, SIGHUP reloads its configuration.

    A stop always wins: once it arrives, a reload is ignored, and a reload still reading its file
    is abandoned. A reload reads the file in a thread of its own (never on the event loop: a
    hostile file cannot stall the agent), and replaces the agent only when the file is valid.
    """

    def __init__(self, loaded: LoadedConfig, once: bool = False) -> None:
        self.current = loaded
        #: Poll every device once, write to the sinks, stop (``edge-agent run --once``).
        self.once = once
        #: The exit code: 0, or 1 when ``once`` and a device did not answer or points were not sent.
        self.exit_code = 0
        self.stopping = False
        self.agent: Agent | None = None
        self.replacement: LoadedConfig | None = None
        self._reading: asyncio.Future[Any] | None = None

    def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        log.info("stopping: draining to the sinks for up to agent.drain; a reload from now on is ignored")
        systemd.notify("STOPPING=1")
        if self._reading is not None and not self._reading.done():
            self._reading.cancel()
            log.info("stopping: the reload in progress is abandoned")
        self.replacement = None
        if self.agent is not None:
            self.agent.stop()

    def reload(self) -> None:
        if self.stopping:
            log.info("reload ignored: the agent is stopping")
            return
        if self._reading is not None and not self._reading.done():
            log.info("reload ignored: the configuration is being read already")
            return
        self._reading = asyncio.ensure_future(self._read(self.current.path))

    async def _read(self, path: Path) -> None:
        loop = asyncio.get_running_loop()
        result: asyncio.Future[LoadedConfig] = loop.create_future()

        def hand_over(settle: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: the agent has stopped
                loop.call_soon_threadsafe(lambda: result.done() or settle())

        def read() -> None:
            try:
                fresh = load_config(path)
            except BaseException as exc:  # handed to the loop, which decides
                hand_over(lambda error=exc: result.set_exception(error))
            else:
                hand_over(lambda: result.set_result(fresh))

        threading.Thread(target=read, name="reload", daemon=True).start()
        try:
            fresh = await result
        except ConfigError as exc:
            log.error(
                "reload refused, the running configuration stays: %s has %d problems:\n%s",
                path,
                len(exc.problems),
                "\n".join(exc.problems),
            )
            return
        except Exception as exc:
            log.error("reload refused, the running configuration stays: %s: %s", path, exc)
            return
        if self.stopping:
            return
        log.info("reloading %s: stopping the running agent, then starting on the new configuration", path)
        systemd.notify("RELOADING=1")
        self.replacement = fresh
        if self.agent is not None:
            self.agent.stop()

    async def _one_cycle(self, agent: Agent) -> None:
        """``--once``: stop as soon as every device has been polled or has failed once."""
        await _until(lambda: all(h.polls or h.failures for h in agent.health))
        log.info("one cycle done: every device polled once; writing to the sinks and stopping")
        self.stop()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        try:
            await self._agents()
        finally:
            # The loop would put the default handlers back when it closes, and a late SIGHUP or a
            # second SIGTERM would then kill the process on its way out: ignore them from here.
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
                signal.signal(sig, signal.SIG_IGN)

    async def _agents(self) -> None:
        while not self.stopping:
            current = self.current
            for warning in current.warnings:
                log.warning("%s", warning)
            agent = self.agent = Agent(current)
            pid = PidFile(pid_file(current))
            pid.claim()
            log.info(
                "agent %s started: %d devices, %d sinks",
                current.config.agent.id,
                len(agent.collectors),
                len(agent.forwarders),
            )
            if self.stopping:  # a stop that came while the agent was being built
                agent.stop()
            running = asyncio.create_task(agent.run())
            await asyncio.sleep(0)
            systemd.notify(f"READY=1\nSTATUS=polling {len(agent.collectors)} devices")
            cycle = asyncio.create_task(self._one_cycle(agent)) if self.once else None
            try:
                await running
            finally:
                pid.release()
                if cycle is not None:
                    cycle.cancel()
            if self.once:
                self.exit_code = _once_result(agent)
                return
            if self.replacement is not None and not self.stopping:
                self.current, self.replacement = self.replacement, None
            elif not agent.restart_requested:
                return


def _once_result(agent: Agent) -> int:
    """``--once``'s exit code: 1 when a device did not answer or points stayed unsent."""
    report = agent.final_report or {}
    silent = [d["name"] for d in report.get("devices", []) if not d.get("polls")]
    left = report.get("buffer", {}).get("pending_points", 0)
    for name in silent:
        log.error("--once: device %s did not answer", name)
    if left and agent.forwarders:
        log.error("--once: %d points were not acknowledged by the sinks; they stay in the local store", left)
    return 1 if silent or (left and agent.forwarders) else 0


def run_forever(loaded: LoadedConfig, once: bool = False) -> int:
    """``edge-agent run``: until SIGTERM or SIGINT; exit code 0 after a clean flush.

    SIGHUP (``edge-agent reload``) re-reads the configuration file. A valid one replaces the
    running agent: it stops as at shutdown (open OEE windows written, analytics checkpoint kept,
    sinks drained for ``agent.drain``; what they did not send stays in the local store) and an
    agent on the new configuration starts on the same store. An invalid one is refused with every
    problem logged, and the running agent carries on. A stop always wins over a reload
    (:class:`Lifecycle`). An agent whose store turned out damaged starts again on a fresh one.
    """

    lifecycle = Lifecycle(loaded, once)

    async def main() -> None:
        done = asyncio.Event()
        pinger = asyncio.create_task(systemd.watchdog(done))
        try:
            await lifecycle.run()
        finally:
            done.set()
            await pinger

    asyncio.run(main())
    return lifecycle.exit_code


__all__ = ["Agent", "Lifecycle", "PidFile", "pid_file", "redact_url", "run_forever", "running_agent"]
