"""Each signal's highest anomaly score per interval: how scores are written without doubling the data.

Every sample is scored (and alarms see every score), but a signal polled every 10 ms would write
100 score points a second beside its 100 raw values. :class:`PeakPerInterval` keeps, per signal,
the highest score of the current interval (aligned to UTC multiples of ``every_ns``) and the
time of the sample that scored it; an interval is written once a later interval has begun (or
at :meth:`flush`), stamped with that sample's time, so the point still sits on a raw sample.
``every_ns`` 0 passes every score through.

>>> import numpy as np
>>> peaks = PeakPerInterval(2, every_ns=10)
>>> col = np.array([0, 0, 0, 1, 1]); ts = np.array([1, 4, 12, 3, 25]); s = np.array([.1, .5, .2, .3, .9])
>>> out = peaks.add(col, ts, s)                    # signal 0's [0, 10) and signal 1's [0, 10) are complete
>>> sorted(zip(out[0].tolist(), out[1].tolist(), out[2].tolist()))
[(0, 4, 0.5), (1, 3, 0.3)]
>>> sorted(zip(*[a.tolist() for a in peaks.flush()]))
[(0, 12, 0.2), (1, 25, 0.9)]
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

_NONE = np.iinfo(np.int64).min

Points = tuple[NDArray[np.intp], NDArray[np.int64], NDArray[np.float64]]


class PeakPerInterval:
    """Per signal: the interval being gathered, its highest score and that sample's time (UTC ns)."""

    def __init__(self, n_signals: int, every_ns: int) -> None:
        self.every_ns = every_ns
        self.interval = np.full(n_signals, _NONE, np.int64)
        self.peak = np.full(n_signals, -np.inf)
        self.peak_ts = np.zeros(n_signals, np.int64)

    def add(self, col: NDArray[np.intp], ts: NDArray[np.int64], score: NDArray[np.float64]) -> Points:
        """Take scores (``col`` ascending, ``ts`` ascending within a column); return completed peaks."""
        if self.every_ns <= 0 or col.shape[0] == 0:
            return col, ts, score
        interval = ts // self.every_ns
        new_group = np.empty(col.shape[0], bool)
        new_group[0] = True
        new_group[1:] = (col[1:] != col[:-1]) | (interval[1:] != interval[:-1])
        starts = np.flatnonzero(new_group)
        peak = np.maximum.reduceat(score, starts)
        size = np.diff(np.append(starts, col.shape[0]))
        # The first sample of each group that reached its peak gives the point its time.
        at_peak = score == np.repeat(peak, size)
        first = np.minimum.reduceat(np.where(at_peak, np.arange(col.shape[0]), col.shape[0]), starts)
        g_col, g_interval, g_ts = col[starts], interval[starts], ts[first]
        # Merge each signal's first group with the interval carried from the last call.
        head = np.ones(starts.shape[0], bool)
        head[1:] = g_col[1:] != g_col[:-1]
        carried = head & (self.interval[g_col] == g_interval)
        c = np.flatnonzero(carried)
        higher = self.peak[g_col[c]] >= peak[c]
        peak[c[higher]] = self.peak[g_col[c[higher]]]
        g_ts[c[higher]] = self.peak_ts[g_col[c[higher]]]
        # Carried intervals that this call moved past are complete.
        done_carry = g_col[head & ~carried]
        done_carry = done_carry[self.interval[done_carry] != _NONE]
        # Each signal's last group stays open.
        tail = np.ones(starts.shape[0], bool)
        tail[:-1] = g_col[1:] != g_col[:-1]
        out_col = np.concatenate([done_carry, g_col[~tail]])
        out_ts = np.concatenate([self.peak_ts[done_carry], g_ts[~tail]])
        out_peak = np.concatenate([self.peak[done_carry], peak[~tail]])
        last = g_col[tail]
        self.interval[last], self.peak[last], self.peak_ts[last] = g_interval[tail], peak[tail], g_ts[tail]
        return out_col.astype(np.intp), out_ts, out_peak

    def flush(self, signals: NDArray[np.intp] | None = None) -> Points:
        """Every open interval (of ``signals``, or all), ended now."""
        open_ = np.flatnonzero(self.interval != _NONE)
        if signals is not None:
            open_ = np.intersect1d(open_, signals)
        out = open_.astype(np.intp), self.peak_ts[open_].copy(), self.peak[open_].copy()
        self.interval[open_], self.peak[open_] = _NONE, -np.inf
        return out
