"""Window grids: which reporting window a time falls in.

A window is identified by its start (UTC ns). ``locate(ts)`` gives ``(start, end)`` of the
window holding each ``ts``; for time outside every window (between shifts) ``start`` is -1
and ``end`` is where the next window begins, so callers can step over the gap.

>>> import numpy as np
>>> grid = FixedWindows(60 * 10**9)
>>> start, end = grid.locate(np.array([90 * 10**9]))
>>> int(start[0]) // 10**9, int(end[0]) // 10**9
(60, 120)
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from edge_agent.analytics.schedule import Shift, daily_spans, days_to_cover

NS = 1_000_000_000
__all__ = ["NS", "FixedWindows", "Shift", "ShiftWindows", "WindowGrid", "day_windows", "local_windows"]


class WindowGrid(Protocol):
    name: str

    def locate(self, ts: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Start and end (UTC ns) of the window holding each time; start -1 when unscheduled."""
        ...

    def label(self, start: int) -> str:
        """A display label for the window starting at ``start`` (shift name, or "")."""
        ...


class FixedWindows:
    """Windows of ``width_ns`` aligned to the epoch shifted by ``origin_ns`` (e.g. a UTC offset)."""

    def __init__(self, width_ns: int, origin_ns: int = 0, name: str = "") -> None:
        if width_ns <= 0:
            raise ValueError("window width must be positive")
        self.width_ns, self.origin_ns = width_ns, origin_ns
        self.name = name or f"{width_ns // NS}s"

    def locate(self, ts: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        start = (ts - self.origin_ns) // self.width_ns * self.width_ns + self.origin_ns
        return start, start + self.width_ns

    def label(self, start: int) -> str:
        return ""


class ShiftWindows:
    """Shift windows in a time zone, resolved day by day so clock changes are respected."""

    name = "shift"

    def __init__(self, shifts: list[Shift], timezone: str) -> None:
        if not shifts:
            raise ValueError("a shift schedule needs at least one shift")
        self.shifts, self.zone = shifts, ZoneInfo(timezone)
        self._starts = np.empty(0, np.int64)
        self._ends = np.empty(0, np.int64)
        self._labels: dict[int, str] = {}
        self._days: tuple[dt.date, dt.date] | None = None

    def _cover(self, lo: int, hi: int) -> None:
        days = days_to_cover(lo, hi, self.zone, 1, self._days)
        if days is None:
            return
        first, last = days
        spans: list[tuple[int, int, str]] = []
        day = first
        while day <= last:
            for s in self.shifts:
                begin, end = daily_spans(day, s.start, s.end, self.zone)
                spans.append((begin, end, s.name))
            day += dt.timedelta(days=1)
        spans.sort()
        self._starts = np.array([s[0] for s in spans], np.int64)
        self._ends = np.array([s[1] for s in spans], np.int64)
        self._labels = {s[0]: s[2] for s in spans}
        self._days = (first, last)

    def locate(self, ts: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        if ts.shape[0] == 0:
            return ts.copy(), ts.copy()
        self._cover(int(ts.min()), int(ts.max()))
        pos = np.searchsorted(self._starts, ts, side="right") - 1
        inside = (pos >= 0) & (ts < self._ends[np.maximum(pos, 0)])
        start = np.where(inside, self._starts[np.maximum(pos, 0)], -1)
        following = self._starts[np.minimum(pos + 1, self._starts.shape[0] - 1)]
        end = np.where(inside, self._ends[np.maximum(pos, 0)], following)
        return start, end

    def label(self, start: int) -> str:
        return self._labels.get(start, "")


def day_windows(timezone: str) -> ShiftWindows:
    """Calendar days from local midnight to local midnight (23 or 25 hours when clocks change)."""
    grid = ShiftWindows([Shift("", dt.time(0), dt.time(0))], timezone)
    grid.name = "1d"
    return grid


def local_windows(width_ns: int, timezone: str, at_ns: int, name: str = "") -> FixedWindows:
    """Windows of ``width_ns`` (dividing a day) aligned to local clock time in ``timezone``,
    using its UTC offset at ``at_ns`` (so 1-hour windows start on the local hour)."""
    offset = dt.datetime.fromtimestamp(at_ns // NS, ZoneInfo(timezone)).utcoffset() or dt.timedelta(0)
    return FixedWindows(width_ns, -int(offset.total_seconds()) * NS % width_ns, name)
