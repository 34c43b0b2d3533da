"""Time sources. Inside the agent time is UTC nanoseconds.

:class:`ScaledClock` runs ``speed`` times faster than the wall clock; the demo plant and the
agent share one so tests can cover an hour of plant time in a couple of minutes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    speed: float

    def now_ns(self) -> int: ...

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of this clock's time."""
        ...


class WallClock:
    speed = 1.0

    def now_ns(self) -> int:
        return time.time_ns()

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

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)
