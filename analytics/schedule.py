"""The work schedule: which time is scheduled, which is a break, which is off (ISO 22400-2 terms).

Shifts and breaks are local wall-clock times repeated every day in one time zone. A shift or a
break whose end is not after its start runs past midnight. Every instant is one of:

- ``WORK``: inside a shift and outside every break (it enters planned busy time);
- ``BREAK``: inside a shift and inside a break (planned downtime, whatever the machine does);
- ``OFF``: outside every shift (not scheduled: it enters no time element).

Without shifts every instant is inside a shift. Days are resolved one by one in the zone, so a
shift on a day when clocks change is an hour shorter or longer.

>>> import datetime as dt
>>> s = WorkSchedule([Shift("day", dt.time(8), dt.time(20))], [Break(dt.time(12), dt.time(12, 30))], "UTC")
>>> noon = 1_700_000_000 // 86400 * 86400 * NS + 12 * 3600 * NS
>>> kind, until = s.locate(np.array([noon - 1, noon]))
>>> kind.tolist(), [int((u - noon) // NS) for u in until]
([1, 2], [0, 1800])
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

NS = 1_000_000_000
OFF, WORK, BREAK = 0, 1, 2
#: A time after every reading (int64 ns).
FOREVER = np.iinfo(np.int64).max


@dataclass(frozen=True, slots=True)
class Shift:
    """A named shift, local wall-clock start and end; end <= start means it runs past midnight."""

    name: str
    start: dt.time
    end: dt.time


@dataclass(frozen=True, slots=True)
class Break:
    """Planned downtime inside shifts, local wall-clock; end <= start runs past midnight."""

    start: dt.time
    end: dt.time


def local_ns(day: dt.date, clock: dt.time, zone: ZoneInfo) -> int:
    """UTC ns of a local wall-clock time on a day (a time skipped by a clock change moves on)."""
    return int(dt.datetime.combine(day, clock, tzinfo=zone).timestamp()) * NS


def daily_spans(day: dt.date, start: dt.time, end: dt.time, zone: ZoneInfo) -> tuple[int, int]:
    """UTC ns of ``[start, end)`` beginning on ``day``; ``end <= start`` ends the next day."""
    end_day = day + dt.timedelta(days=1) if end <= start else day
    return local_ns(day, start, zone), local_ns(end_day, end, zone)


def days_to_cover(
    lo: int, hi: int, zone: ZoneInfo, margin: int, known: tuple[dt.date, dt.date] | None
) -> tuple[dt.date, dt.date] | None:
    """Local days (with ``margin`` days either side) to resolve so ``[lo, hi]`` (ns) is covered;
    None when the ``known`` days already cover it. Grows the known range, never shrinks it."""
    first = dt.datetime.fromtimestamp(lo // NS, zone).date() - dt.timedelta(days=margin)
    last = dt.datetime.fromtimestamp(hi // NS, zone).date() + dt.timedelta(days=margin)
    if known is not None and known[0] <= first and last <= known[1]:
        return None
    if known is not None:
        first, last = min(first, known[0]), max(last, known[1])
    return first, last


class WorkSchedule:
    """Classifies time as WORK, BREAK or OFF; vectorised, resolved day by day in the zone."""

    def __init__(self, shifts: list[Shift] | None, breaks: list[Break], timezone: str = "UTC") -> None:
        self.shifts, self.breaks, self.zone = shifts, breaks, ZoneInfo(timezone)
        self._edges = np.empty(0, np.int64)  # segment i is [edges[i], edges[i + 1])
        self._kinds = np.empty(0, np.int8)
        self._days: tuple[dt.date, dt.date] | None = None

    @property
    def always_work(self) -> bool:
        return self.shifts is None and not self.breaks

    def _cover(self, lo: int, hi: int) -> None:
        days = days_to_cover(lo, hi, self.zone, 2, self._days)
        if days is None:
            return
        first, last = days
        shift_spans: list[tuple[int, int]] = []
        break_spans: list[tuple[int, int]] = []
        day = first
        while day <= last:
            shift_spans += [daily_spans(day, s.start, s.end, self.zone) for s in self.shifts or []]
            break_spans += [daily_spans(day, b.start, b.end, self.zone) for b in self.breaks]
            day += dt.timedelta(days=1)
        lo_ns = local_ns(first, dt.time(0), self.zone)
        hi_ns = local_ns(last, dt.time(0), self.zone)
        if self.shifts is None:
            shift_spans = [(lo_ns, hi_ns)]
        edges = np.unique(np.array([lo_ns, hi_ns, *(t for span in shift_spans + break_spans for t in span)], np.int64))
        edges = edges[(edges >= lo_ns) & (edges <= hi_ns)]
        mids = edges[:-1]
        in_shift = self._coverage(shift_spans, mids)
        in_break = self._coverage(break_spans, mids)
        kinds = np.where(in_shift, np.where(in_break, BREAK, WORK), OFF).astype(np.int8)
        # Merge neighbours of the same kind: fewer, longer segments.
        keep = np.ones(kinds.shape[0], bool)
        keep[1:] = kinds[1:] != kinds[:-1]
        self._edges = np.append(edges[:-1][keep], edges[-1])
        self._kinds = kinds[keep]
        self._days = (first, last)

    @staticmethod
    def _coverage(spans: list[tuple[int, int]], at: NDArray[np.int64]) -> NDArray[np.bool_]:
        """True where ``at`` lies inside any of ``spans`` (half-open)."""
        if not spans:
            return np.zeros(at.shape[0], bool)
        arr = np.array(spans, np.int64)
        starts, ends = np.sort(arr[:, 0]), np.sort(arr[:, 1])
        opened = np.searchsorted(starts, at, side="right")
        closed = np.searchsorted(ends, at, side="right")
        return np.asarray(opened > closed)

    def locate(self, ts: NDArray[np.int64]) -> tuple[NDArray[np.int8], NDArray[np.int64]]:
        """The kind of time at each ``ts`` and when that stretch of time ends (UTC ns)."""
        if self.always_work or ts.shape[0] == 0:
            return np.full(ts.shape[0], WORK, np.int8), np.full(ts.shape[0], FOREVER, np.int64)
        self._cover(int(ts.min()), int(ts.max()))
        pos = np.searchsorted(self._edges, ts, side="right") - 1
        return self._kinds[pos], self._edges[pos + 1]
