"""One poll loop per device: connect, collect on schedule, reconnect with bounded backoff.

Polls keep to a grid on the monotonic clock (a wall clock stepped back or forth moves the
readings' time stamps, never the schedule). A device that cannot be reached is logged once per
change of state and retried with exponential
backoff (``initial`` doubling up to ``max``, with ±20 % jitter); the backoff resets only after a
successful poll, so a device that accepts connections but fails every read backs off too. One
device's failure never stalls another: each loop is its own task, and each wait is bounded by
the device's timeout. Everything here runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge_agent.collectors.batch import Batch
from edge_agent.collectors.plugin import Collector
from edge_agent.runtime.clock import Clock

log = logging.getLogger("edge_agent")


@dataclass
class DeviceHealth:
    """What ``/health`` shows for one device (clock times in UTC ns)."""

    name: str
    endpoint: str
    #: True while the latest poll succeeded (connected and answered).
    connected: bool = False
    last_ok_ns: int = 0
    polls: int = 0
    failures: int = 0
    #: Polls that started later than due because the previous one ran past the interval.
    overruns: int = 0
    last_error: str = ""
    #: Since when the device has been failing (wall clock, UTC ns); 0 while it answers.
    down_since_ns: int = 0
    #: While it backs off: when it tries again at the latest (``time.monotonic_ns``); 0 otherwise.
    retry_at_monotonic_ns: int = 0


#: How often a device backing off looks whether its shared connection came back (seconds).
LINK_CHECK_S = 0.1


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays in seconds: ``initial``, doubled per failure up to ``max``."""

    initial: float = 0.5
    max: float = 4.0

    def after(self, failures: int) -> float:
        base = min(self.initial * 2.0 ** max(failures - 1, 0), self.max)
        return base * random.uniform(0.8, 1.2)


class DevicePoller:
    """Polls one device until cancelled; hands every batch to ``deliver``."""

    def __init__(
        self,
        index: int,
        collector: Collector,
        health: DeviceHealth,
        poll_interval_s: float,
        timeout_s: float,
        clock: Clock,
        deliver: Callable[[int, Batch], None],
        on_down: Callable[[int, int], None] | None = None,
        backoff: Backoff | None = None,
        on_lost: Callable[[str, int], None] | None = None,
    ) -> None:
        self.index, self.collector, self.health = index, collector, health
        self.interval_ns = int(poll_interval_s * 1e9)
        self.timeout_s, self.clock, self.deliver, self.on_down = timeout_s, clock, deliver, on_down
        self.backoff = backoff or Backoff()
        #: Counts points that a failing hand-over lost (reason, points), before the error ends the task.
        self.on_lost = on_lost
        self._reported = ""
        self._failures_in_row = 0

    async def run(self) -> None:
        collector = self.collector
        limit = self.timeout_s * 2 + 1
        next_due = self.clock.monotonic_ns()
        connected = False
        # A collector whose every wait is bounded (``bounds_its_waits``) is polled without a
        # timeout of the poller's own: a thousand devices at 1 s would set a thousand a second.
        bounded = bool(getattr(collector, "bounds_its_waits", False))
        while True:
            try:
                if connected and bounded:
                    batch = await collector.collect()
                else:
                    async with asyncio.timeout(limit):
                        if not connected:
                            await collector.connect()
                            connected = True
                        batch = await collector.collect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one device's failure never stops the others
                connected = connected and bool(getattr(exc, "link_ok", False))
                await self._failed(exc, close=not connected)
                next_due = self.clock.monotonic_ns()
                continue
            self._succeeded(batch, self.clock.now_ns())
            now = self.clock.monotonic_ns()
            next_due = self._next_slot(next_due, now)
            await asyncio.sleep(max(next_due - now, 0) / 1e9 / self.clock.speed)

    def _next_slot(self, due: int, now: int) -> int:
        """The next poll's slot on the device's grid of ``poll_interval`` (monotonic clock ns).

        A poll that ran late (a slow reply, a busy box) is followed at once by the next one, so
        the grid keeps its rate; slots more than one interval in the past are skipped and
        counted in ``overruns``.

        >>> p = DevicePoller(0, None, DeviceHealth("d", "x"), 0.01, 1.0, None, None)  # type: ignore[arg-type]
        >>> p._next_slot(0, 4_000_000), p._next_slot(10_000_000, 15_000_000), p.health.overruns
        (10000000, 20000000, 0)
        >>> p._next_slot(20_000_000, 57_000_000), p.health.overruns   # 30 and 40 ms are skipped
        (50000000, 2)
        """
        due += self.interval_ns
        behind = now - due
        if behind > self.interval_ns:
            missed = behind // self.interval_ns
            self.health.overruns += int(missed)
            due += missed * self.interval_ns
        return due

    def _succeeded(self, batch: Batch, now: int) -> None:
        health = self.health
        if not health.connected:
            log.info("device %s connected (%s)", health.name, health.endpoint)
        health.connected = True
        health.down_since_ns = 0
        health.polls += 1
        health.last_ok_ns = now
        self._failures_in_row = 0
        self._reported = ""
        error = self.collector.last_error
        if error and error != health.last_error:
            log.warning("device %s answered with errors (points kept with a bad quality flag): %s", health.name, error)
        health.last_error = error or ""
        if len(batch):
            try:
                self.deliver(self.index, batch)
            except Exception:
                if self.on_lost is not None:
                    self.on_lost("handover_failed", len(batch))
                raise

    async def _failed(self, exc: Exception, close: bool = True) -> None:
        health = self.health
        was_connected = health.connected
        health.failures += 1
        health.connected = False
        if not health.down_since_ns:
            health.down_since_ns = time.time_ns()
        self._failures_in_row += 1
        message = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
        if isinstance(exc, TimeoutError) and not str(exc):
            message = f"no answer within {self.timeout_s * 2 + 1:g} s"
        health.last_error = message
        if self.on_down is not None and (was_connected or self._failures_in_row == 1):
            self.on_down(self.index, self.clock.now_ns())
        if message != self._reported:
            expected = isinstance(exc, ConnectionError | TimeoutError | OSError | LookupError)
            log.warning(
                "device %s unreachable, retrying with backoff up to %g s: %s",
                health.name,
                self.backoff.max,
                message,
                exc_info=not expected,
            )
            self._reported = message
        if close:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.collector.close(), self.timeout_s)
        delay = self.backoff.after(self._failures_in_row)
        health.retry_at_monotonic_ns = time.monotonic_ns() + int(delay * 1e9)
        await self._back_off(delay)
        health.retry_at_monotonic_ns = 0

    async def _back_off(self, delay_s: float) -> None:
        """Wait ``delay_s`` seconds, or less: a collector whose connection is shared with other
        devices (``link_generation``, optional) stops waiting as soon as any of them has
        reconnected it, so every unit behind a gateway that came back polls again at once."""
        generation = getattr(self.collector, "link_generation", None)
        if generation is None:
            await asyncio.sleep(delay_s)
            return
        loop = asyncio.get_running_loop()
        until = loop.time() + delay_s
        while (left := until - loop.time()) > 0:
            await asyncio.sleep(min(left, LINK_CHECK_S))
            if getattr(self.collector, "link_generation", generation) != generation:
                return
