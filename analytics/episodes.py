"""State episodes: consecutive time in one state category, and which stops are micro-stops.

An *episode* is a maximal run of consecutive time in one category (a new reading of the same
category continues it; another category, or unknown time, ends it). An idle or down episode
shorter than the machine's micro-stop threshold is a **micro-stop**; one not shorter is a loss
of availability (**delay** when idle, **down** when down), and a down one is a **failure**.
Length is wall-clock time from the episode's first to its last second, whatever the schedule.

Streaming: the engine hands over contiguous state intervals per machine. An episode still open
and still shorter than the threshold cannot be classified yet; its time is *held* and offered
again with the next intervals. Once it reaches the threshold it is classified for good, so a
window never waits longer than the threshold for its stops to be classified.

>>> import numpy as np
>>> runs = Episodes(np.array([60 * NS]))
>>> m = np.zeros(3, np.intp)
>>> a = np.array([0, 30, 100]) * NS
>>> b = np.array([30, 100, 130]) * NS
>>> out = runs.classify(m, a, b, np.array([DOWN, RUNNING, IDLE], np.int8), np.array([IDLE], np.int8))
>>> [COLUMNS[c] for c in out.col]          # 30 s down: a micro-stop; the open idle run is held
['microstop_s', 'running_s']
>>> runs.held_from.tolist() == [100 * NS]
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

NS = 1_000_000_000
# State categories (what a state code maps to).
RUNNING, IDLE, DOWN, SETUP, PLANNED_STOP, UNKNOWN = range(6)
STATE_NAMES = ("running", "idle", "down", "setup", "planned_stop", "unknown")
# Time columns of a window's element row.
C_RUNNING, C_MICROSTOP, C_DELAY, C_DOWN, C_SETUP, C_PLANNED_STOP, C_BREAK, C_UNKNOWN, C_UNSCHEDULED = range(9)
# Count columns.
C_TOTAL, C_GOOD, C_REJECT, C_ENERGY, C_FAILURES = range(9, 14)
#: Counts that could not be put in a window (column = C_UNATTRIBUTED + counter kind): the
#: increase over an outage, or what a counter counted since it was reset.
C_UNATTRIBUTED = 14
#: Counter readings not believed (a reset, an implausible jump, a re-baseline after an outage).
C_RESETS = 18
COLUMNS = (
    "running_s",
    "microstop_s",
    "delay_s",
    "down_s",
    "setup_s",
    "planned_stop_s",
    "break_s",
    "unknown_s",
    "unscheduled_s",
    "total_delta",
    "good_delta",
    "reject_delta",
    "energy_kwh",
    "failures",
    "unattributed_total",
    "unattributed_good",
    "unattributed_reject",
    "unattributed_kwh",
    "counter_resets",
)
NCOL = len(COLUMNS)
#: Column of each category's time when it is not a stop (stops depend on their length).
_COLUMN_OF = np.array([C_RUNNING, C_DELAY, C_DOWN, C_SETUP, C_PLANNED_STOP, C_UNKNOWN], np.intp)


@dataclass(frozen=True, slots=True)
class Classified:
    """Intervals with their time column; ``failure``: the id of the failure the interval belongs to."""

    m: NDArray[np.intp]
    a: NDArray[np.int64]
    b: NDArray[np.int64]
    col: NDArray[np.intp]
    failure: NDArray[np.int64]  # episode id of a failure not yet counted, else -1


def group_starts(*keys: NDArray[np.int64]) -> NDArray[np.bool_]:
    """True where a row starts a new run of equal keys (rows already sorted by the keys)."""
    n = keys[0].shape[0]
    new = np.zeros(n, bool)
    if n:
        new[0] = True
        for k in keys:
            new[1:] |= k[1:] != k[:-1]
    return new


def order_by(group: NDArray[np.int64] | NDArray[np.intp], ts: NDArray[np.int64]) -> NDArray[np.intp]:
    """Indices sorting rows by group, then time (a radix sort when times are already in order)."""
    n = group.shape[0]
    if n > 1 and int(group.max()) < 65536 and int(group.min()) >= 0 and bool((ts[1:] >= ts[:-1]).all()):
        return np.argsort(group.astype(np.uint16), kind="stable")
    return np.lexsort((ts, group))


class Episodes:
    """Per machine: the open episode (category, start, end, how much is classified)."""

    def __init__(self, threshold_ns: NDArray[np.int64]) -> None:
        n = threshold_ns.shape[0]
        self.threshold_ns = threshold_ns
        self.cat = np.full(n, -1, np.int8)
        self.start = np.zeros(n, np.int64)
        self.end = np.zeros(n, np.int64)
        #: Start of the open episode's time not yet classified (== end when nothing is held).
        self.held_from = np.zeros(n, np.int64)
        self.seq = np.zeros(n, np.int64)
        #: Episode id of the open down episode whose failure is not counted yet (-1: none).
        self.owed = np.full(n, -1, np.int64)

    def classify(
        self,
        m: NDArray[np.intp],
        a: NDArray[np.int64],
        b: NDArray[np.int64],
        cat: NDArray[np.int8],
        next_cat: NDArray[np.int8],
    ) -> Classified:
        """Classify contiguous intervals (per machine in time order, after the open episode).

        ``next_cat`` (per machine) is the category of the time after the last interval: when it
        differs, the machine's last episode has ended there and is classified now.
        """
        keep = b > a
        m, a, b, cat = m[keep], a[keep], b[keep], cat[keep]
        # The held part of an open episode is offered again, in front of the new intervals.
        held = np.unique(m[(self.held_from[m] < self.end[m])])
        m = np.concatenate([held, m])
        a = np.concatenate([self.held_from[held], a])
        b = np.concatenate([self.end[held], b])
        cat = np.concatenate([self.cat[held], cat])
        self.end[held] = self.held_from[held]  # the held part continues the open episode
        order = np.lexsort((a, m))
        m, a, b, cat = m[order], a[order], b[order], cat[order]
        n = m.shape[0]
        if n == 0:
            return Classified(m, a, b, np.empty(0, np.intp), np.empty(0, np.int64))
        first = group_starts(m.astype(np.int64))
        prev_cat = np.empty_like(cat)
        prev_cat[1:] = cat[:-1]
        prev_cat[first] = self.cat[m[first]]
        prev_end = np.empty_like(b)
        prev_end[1:] = b[:-1]
        prev_end[first] = self.end[m[first]]
        born = (cat != prev_cat) | (a != prev_end)  # a new episode starts at this interval
        head = born | first
        run = np.cumsum(head) - 1
        h = np.flatnonzero(head)
        rm = m[h]
        r_start = np.where(born[h], a[h], self.start[rm])
        last_row = np.append(h[1:] - 1, n - 1)
        r_end = b[last_row]
        r_cat = cat[h]
        r_last = np.append(rm[1:] != rm[:-1], True)
        r_open = r_last & (cat[last_row] == next_cat[rm])  # the machine's last episode, not ended yet
        # Episode ids: a machine's new episodes number on from its last one.
        new_count = np.cumsum(born[h])
        r_first = group_starts(rm.astype(np.int64))
        base = np.maximum.accumulate(np.where(r_first, new_count - born[h], 0))
        r_seq = self.seq[rm] + new_count - base
        r_id = rm.astype(np.int64) << 32 | r_seq
        stop = (r_cat == IDLE) | (r_cat == DOWN)
        long = r_end - r_start >= self.threshold_ns[rm]
        hold = stop & ~long & r_open
        r_col = np.where(stop & ~long, C_MICROSTOP, _COLUMN_OF[r_cat])
        r_owes = (r_cat == DOWN) & long & (born[h] | (self.owed[rm] == r_id))
        # The machines' open episodes carry over.
        lm, ok = rm[r_last], r_open[r_last]
        self.cat[lm], self.start[lm] = r_cat[r_last], r_start[r_last]
        self.end[lm], self.seq[lm] = r_end[r_last], r_seq[r_last]
        self.held_from[lm] = np.where(hold[r_last], r_start[r_last], r_end[r_last])
        owes = ok & (r_cat[r_last] == DOWN) & (r_owes[r_last] | hold[r_last])
        self.owed[lm] = np.where(owes, r_id[r_last], -1)
        out = ~hold[run]
        return Classified(m[out], a[out], b[out], r_col[run][out], np.where(r_owes, r_id, -1)[run][out])

    def counted(self, failure_ids: NDArray[np.int64]) -> None:
        """Failures now counted in a window: no longer owed by their open episodes."""
        self.owed[np.isin(self.owed, failure_ids)] = -1

    def release(self) -> Classified:
        """At the end of the data: every held episode is shorter than the threshold (micro-stop)."""
        m = np.flatnonzero(self.held_from < self.end)
        out = Classified(
            m, self.held_from[m], self.end[m], np.full(m.shape[0], C_MICROSTOP, np.intp), np.full(m.shape[0], -1)
        )
        self.held_from[m] = self.end[m]
        self.owed[m] = -1
        return out
