"""Time sources. Inside the agent time is UTC nanoseconds.

Two readings of every clock: ``now_ns`` (UTC, what points are stamped with) and ``monotonic_ns``
(never steps: what polls are scheduled and timeouts measured by). A wall clock stepped by NTP or
an operator moves the stamps, never the schedule; :class:`ClockWatch` tells when it stepped.

:class:`ScaledClock` runs ``speed`` times faster than the wall clock; the demo plant and the
agent share one so tests can cover an hour of plant time in a couple of minutes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    speed: float

    def now_ns(self) -> int:
        """UTC nanoseconds (may step)."""
        ...

    def monotonic_ns(self) -> int:
        """Nanoseconds of this clock's time that never step back or jump (for schedules)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of this clock's time."""
        ...


class WallClock:
    speed = 1.0

    def now_ns(self) -> int:
        return time.time_ns()

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ScaledClock:
    """Starts at ``start_ns`` and advances ``speed`` clock seconds per wall second.

    A ``held`` clock stands at ``start_ns`` until :meth:`release`: the demo plant's servers take
    seconds to start, which at 30x would be minutes of plant time nobody watched.

    >>> clock = ScaledClock(10**9, speed=30.0, held=True)
    >>> clock.now_ns() == clock.now_ns() == 10**9
    True
    >>> clock.release(5 * 10**9)
    >>> clock.now_ns() >= 5 * 10**9
    True
    """

    def __init__(self, start_ns: int | None = None, speed: float = 1.0, held: bool = False) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self.start_ns = time.time_ns() if start_ns is None else int(start_ns)
        self._origin = time.monotonic_ns()
        self.held = held

    def release(self, start_ns: int | None = None) -> None:
        """Start running from now, at ``start_ns`` (default: where the clock stands)."""
        if start_ns is not None:
            self.start_ns = int(start_ns)
        self._origin = time.monotonic_ns()
        self.held = False

    def now_ns(self) -> int:
        if self.held:
            return self.start_ns
        return self.start_ns + int((time.monotonic_ns() - self._origin) * self.speed)

    def monotonic_ns(self) -> int:
        """Built on the monotonic clock already: the same as :meth:`now_ns`."""
        return self.now_ns()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


class ClockWatch:
    """Notices when a clock's UTC reading steps against its monotonic one by more than
    ``threshold_ns`` (a step of NTP, an operator setting the time).

    >>> class Stepping:
    ...     speed, wall, mono = 1.0, 1_000, 1_000
    ...     def now_ns(self): return self.wall
    ...     def monotonic_ns(self): return self.mono
    >>> clock = Stepping()
    >>> watch = ClockWatch(clock, threshold_ns=100)
    >>> clock.wall -= 5_000
    >>> watch.check(), watch.steps
    (-5e-06, 1)
    """

    def __init__(self, clock: Clock, threshold_ns: int) -> None:
        self.clock, self.threshold_ns = clock, threshold_ns
        self._offset = clock.now_ns() - clock.monotonic_ns()
        #: Steps seen since start, and the latest one (s, + forward).
        self.steps = 0
        self.last_step_s = 0.0

    def check(self) -> float | None:
        """The step (s) since the last check when it is larger than the threshold, else None."""
        offset = self.clock.now_ns() - self.clock.monotonic_ns()
        step, self._offset = offset - self._offset, offset
        if abs(step) <= self.threshold_ns:
            return None
        self.steps += 1
        self.last_step_s = step / 1e9
        return self.last_step_s
