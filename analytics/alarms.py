"""Alarms with hysteresis over combined anomaly scores.

An alarm on a signal turns on when its score is at least ``on`` for ``k_on`` valid samples in a
row, and off when it is below ``off`` (lower than ``on``) for ``k_off`` valid samples in a row;
gaps (NaN) change neither run. Each alarm is an event with the signal, the detector that scored
highest when it turned on, its start and end times and its peak score. Only signals that are in
alarm or cross ``on`` in a block are stepped through sample by sample; the rest cost one pass.

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

import math
from dataclasses import dataclass

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


class Alarms:
    def __init__(self, n_signals: int, on: float = 1.0, off: float = 0.5, k_on: int = 2, k_off: int = 5) -> None:
        if not off < on:
            raise ValueError("the off-threshold must be below the on-threshold")
        if k_on < 1 or k_off < 1:
            raise ValueError("k_on and k_off count samples: at least 1")
        self.on, self.off, self.k_on, self.k_off = on, off, k_on, k_off
        self.n_signals = n_signals
        self.active = np.zeros(n_signals, bool)
        self.run_on = np.zeros(n_signals, np.int64)
        self.run_off = np.zeros(n_signals, np.int64)
        self.start_ns = np.zeros(n_signals, np.int64)
        self.peak = np.zeros(n_signals)
        self.detector = [""] * n_signals

    def update(
        self, scores: NDArray[np.float64], ts: NDArray[np.int64], fired: dict[tuple[int, int], str]
    ) -> tuple[NDArray[np.uint8], list[AlarmEvent]]:
        """Alarm flags per sample (1 = in alarm), and the events that started or ended."""
        flags = np.zeros(scores.shape, np.uint8)
        with np.errstate(invalid="ignore"):
            crossing = np.asarray((scores >= self.on).any(axis=0))
        events: list[AlarmEvent] = []
        for col in np.flatnonzero(self.active | crossing).tolist():
            events += self._walk(col, scores[:, col], ts[:, col], flags[:, col], fired)
        return flags, events

    def _walk(
        self,
        col: int,
        s: NDArray[np.float64],
        t: NDArray[np.int64],
        flag: NDArray[np.uint8],
        fired: dict[tuple[int, int], str],
    ) -> list[AlarmEvent]:
        out: list[AlarmEvent] = []
        active, run_on, run_off = bool(self.active[col]), int(self.run_on[col]), int(self.run_off[col])
        for i, score in enumerate(s.tolist()):
            if math.isnan(score):  # a gap
                flag[i] = active
                continue
            if not active:
                run_on = run_on + 1 if score >= self.on else 0
                if run_on >= self.k_on:
                    active, run_off = True, 0
                    self.start_ns[col], self.peak[col] = t[i], score
                    self.detector[col] = fired.get((i, col), "combined")
                    out.append(AlarmEvent(col, self.detector[col], int(t[i]), None, score))
            else:
                self.peak[col] = max(self.peak[col], score)
                run_off = run_off + 1 if score < self.off else 0
                if run_off >= self.k_off:
                    active, run_on = False, 0
                    out.append(
                        AlarmEvent(
                            col, self.detector[col], int(self.start_ns[col]), int(t[i]), float(self.peak[col]), False
                        )
                    )
            flag[i] = active
        self.active[col], self.run_on[col], self.run_off[col] = active, run_on, run_off
        # An alarm that started and ended in this block is one event, not two.
        merged: list[AlarmEvent] = []
        for e in out:
            if e.end_ns is not None and merged and merged[-1].end_ns is None and merged[-1].start_ns == e.start_ns:
                merged[-1] = AlarmEvent(e.signal, e.detector, e.start_ns, e.end_ns, e.peak, True)
            else:
                merged.append(e)
        return merged

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
