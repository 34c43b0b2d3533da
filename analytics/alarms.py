"""Alarms with hysteresis over combined anomaly scores.

An alarm on a signal turns on when its score is at least ``on`` for ``k_on`` valid samples in a
row, and off when it is below ``off`` (lower than ``on``) for ``k_off`` valid samples in a row
while its abnormal condition no longer holds (``hold``, given per signal with each block;
:mod:`analytics.condition`); gaps (NaN) change neither run. Each alarm is an event with the
signal, the detector that scored highest when it turned on, its start and end times and its peak
score. Only signals that are in alarm or cross ``on`` in a block are stepped through sample by
sample; the rest cost one pass.

Examples
--------
>>> import numpy as np
>>> scores = np.array([[0.2], [1.5], [1.2], [0.7], [0.3], [0.2], [0.1]])
>>> ts = np.arange(7, dtype=np.int64)[:, None] * 10**9
>>> alarms = Alarms(1, on=1.0, off=0.5, k_on=1, k_off=2)  # one sample over ``on`` is enough here
>>> flags, events = alarms.update(scores, ts, {(1, 0): "spike"})
>>> flags[:, 0].tolist()
[0, 1, 1, 1, 1, 0, 0]
>>> [(e.detector, e.start_ns // 10**9, e.end_ns // 10**9, e.peak) for e in events]
[('spike', 1, 5, 1.5)]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One alarm: ``end_ns`` is None while it is still on (UTC ns; peak is a combined score).

    ``new`` is True when this is the first report of the alarm (its start is news); an event
    that only reports the end of an alarm reported before has ``new`` False.
    """

    signal: int
    detector: str
    start_ns: int
    end_ns: int | None
    peak: float
    new: bool = True


class Namer(Protocol):
    def get(self, key: tuple[int, int], default: str | None = None) -> str | None: ...


class Alarms:
    """Hysteresis alarms for ``n_signals`` signals; state is a few arrays per signal."""

    def __init__(
        self,
        n_signals: int,
        on: float = 1.0,
        off: float = 0.5,
        k_on: int = 2,
        k_off: int = 5,
        cooldown: int = 0,
        hold_min: int = 0,
        persistent: frozenset[str] = frozenset(),
    ) -> None:
        if not off < on:
            raise ValueError("the off-threshold must be below the on-threshold")
        if k_on < 1 or k_off < 1:
            raise ValueError("k_on and k_off count samples: at least 1")
        if cooldown < 0:
            raise ValueError("cooldown counts samples: 0 or more")
        self.on, self.off, self.k_on, self.k_off, self.cooldown = on, off, k_on, k_off, cooldown
        #: An alarm started by one of the ``persistent`` detectors (a sum that saw a change begin)
        #: lasts at least ``hold_min`` valid samples: a slow drift is still small when it is caught,
        #: and its condition shows only later.
        self.hold_min, self.persistent = hold_min, persistent
        #: Valid samples since each signal's last alarm started (a new one waits for ``cooldown``).
        self.since_start = np.full(n_signals, np.iinfo(np.int64).max // 2, np.int64)
        self.n_signals = n_signals
        self.active = np.zeros(n_signals, bool)
        self.run_on = np.zeros(n_signals, np.int64)
        self.run_off = np.zeros(n_signals, np.int64)
        self.start_ns = np.zeros(n_signals, np.int64)
        self.peak = np.zeros(n_signals)
        self.detector = [""] * n_signals

    def update(
        self,
        scores: NDArray[np.float64],
        ts: NDArray[np.int64],
        fired: Mapping[tuple[int, int], str] | Namer,
        hold: NDArray[np.bool_] | None = None,
    ) -> tuple[NDArray[np.uint8], list[AlarmEvent]]:
        """Alarm flags per sample (1 = in alarm), and the events that started or ended.

        ``hold`` (per signal, for the whole block): the signal's abnormal condition lasts, so an
        active alarm does not count samples towards its end. Only signals in alarm, or crossing
        ``on`` somewhere in the block, are stepped; they are stepped row by row, vectorised over
        those signals.
        """
        flags = np.zeros(scores.shape, np.uint8)
        cols = self._to_step(scores)
        if cols.shape[0] == 0:
            return flags, []
        s = scores[:, cols]
        t = ts[:, cols]
        active, run_on, run_off = self.active[cols], self.run_on[cols], self.run_off[cols]
        lasting = np.zeros(cols.shape[0], bool) if hold is None else hold[cols]
        persistent = np.array([self.detector[c] in self.persistent for c in cols.tolist()], bool)
        # Samples since the last start, as of each row: counted back from the block's end.
        valid_after = np.cumsum((~np.isnan(s))[::-1], axis=0)[::-1]
        since = self.since_start[cols]
        start, peak = self.start_ns[cols], self.peak[cols]
        started_at = np.full(cols.shape[0], -1, np.int64)  # row of the latest start in this block
        events: list[AlarmEvent] = []
        with np.errstate(invalid="ignore"):
            for i in range(s.shape[0]):
                row = s[i]
                valid = ~np.isnan(row)
                high, low = row >= self.on, (row < self.off) & ~lasting
                if self.hold_min:
                    low &= ~(persistent & (since - valid_after[i] + 1 < self.hold_min))
                # Inactive signals count samples at or over ``on``; active ones samples under ``off``.
                run_on = np.where(valid & ~active, np.where(high, run_on + 1, 0), run_on)
                run_off = np.where(valid & active, np.where(low, run_off + 1, 0), run_off)
                np.fmax(peak, np.where(active & valid, row, np.nan), out=peak)
                turn_on = ~active & (run_on >= self.k_on)
                if self.cooldown:
                    turn_on &= since - valid_after[i] + 1 >= self.cooldown
                turn_off = active & (run_off >= self.k_off)
                if turn_on.any():
                    on = np.flatnonzero(turn_on)
                    start[on], peak[on], run_off[on], started_at[on] = t[i, on], row[on], 0, i
                    since[on] = valid_after[i, on] - 1
                    for j in on.tolist():
                        col = int(cols[j])
                        self.detector[col] = fired.get((i, col)) or "combined"
                        persistent[j] = self.detector[col] in self.persistent
                        events.append(AlarmEvent(col, self.detector[col], int(t[i, j]), None, float(row[j])))
                if turn_off.any():
                    off = np.flatnonzero(turn_off)
                    run_on[off] = 0
                    for j in off.tolist():
                        col = int(cols[j])
                        # An alarm that started and ended in this block is one event, not two.
                        new = bool(started_at[j] >= 0)
                        if new:
                            events = [e for e in events if not (e.signal == col and e.end_ns is None)]
                        started_at[j] = -1
                        events.append(
                            AlarmEvent(col, self.detector[col], int(start[j]), int(t[i, j]), float(peak[j]), new)
                        )
                active = (active | turn_on) & ~turn_off
                flags[i, cols] = active
        self.active[cols], self.run_on[cols], self.run_off[cols] = active, run_on, run_off
        self.start_ns[cols], self.peak[cols] = start, peak
        self.since_start[cols] = since
        events.sort(key=lambda e: (e.start_ns if e.end_ns is None or e.new else e.end_ns, e.signal))
        return flags, events

    def _to_step(self, scores: NDArray[np.float64]) -> NDArray[np.intp]:
        """The signals in alarm or crossing ``on`` in this block; the others' carried runs end."""
        with np.errstate(invalid="ignore"):
            crossing = np.asarray((scores >= self.on).any(axis=0))
        if self.cooldown or self.hold_min:
            self.since_start += (~np.isnan(scores)).sum(axis=0)
        stepped = self.active | crossing
        # Signals neither in alarm nor crossing: any valid sample here was under ``on``, so a run
        # of samples at or over ``on`` carried from the last block is broken.
        carried = np.flatnonzero((self.run_on > 0) & ~stepped)
        if carried.shape[0]:
            self.run_on[carried[(~np.isnan(scores[:, carried])).any(axis=0)]] = 0
        return np.flatnonzero(stepped)

    def reset(self, signals: NDArray[np.intp], now_ns: int) -> list[AlarmEvent]:
        """Turn ``signals`` off; alarms still on end at ``now_ns`` (returned as events)."""
        ended = [
            AlarmEvent(int(c), self.detector[c], int(self.start_ns[c]), now_ns, float(self.peak[c]), False)
            for c in np.asarray(signals).tolist()
            if self.active[c]
        ]
        self.active[signals] = False
        self.run_on[signals] = 0
        self.run_off[signals] = 0
        return ended
