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
    """Starts at ``start_ns`` and advances ``speed`` clock seconds per wall second."""

    def __init__(self, start_ns: int | None = None, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self.start_ns = time.time_ns() if start_ns is None else start_ns
        self._origin = time.monotonic_ns()

    def now_ns(self) -> int:
        return self.start_ns + int((time.monotonic_ns() - self._origin) * self.speed)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)
