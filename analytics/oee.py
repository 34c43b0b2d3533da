"""OEE time elements per machine and window, computed as readings arrive (ISO 22400-2 terms).

Inputs are readings of each machine's state signal (a code mapped to a category) and of its
counters (total, good, reject; energy). Every machine's time, from its first reading on, is cut
into intervals: a state holds from its reading until the next reading of that signal, but never
longer than ``stale_after`` (the rest is *unknown*). Idle and down episodes are classified whole
(:mod:`analytics.episodes`: micro-stop, delay, down, failure), then each interval is cut at
window edges and at the edges of the work schedule (:mod:`analytics.schedule`): break time is
*break* whatever the machine does, time off every shift is *unscheduled*. A window gets exactly
the part of each interval that falls inside it. A counter increase counts in the window holding
the later of its two readings, when it is *plausible*: at most ``(elapsed / ideal_cycle_s + 1) *
counter_margin`` parts (energy: any increase). A counter may wrap under its ``modulus``; a wrap
counts when plausible too. A decrease without a modulus, an implausible jump and the first
reading after an outage are not counted as an increase: the reading re-baselines the counter and
is counted in ``counter_resets``. A counter that restarted between two readings of the same
window (both readings inside it) made what it shows since the restart, in that window: the new
reading counts there when it is plausible for the time since the last reading. Otherwise what the
machine made meanwhile, if it can be told (the increase over the outage, or the count since a
reset), goes to the window's ``unattributed_*`` columns: its window is not known.

An outage (a state reading with a NaN code: the device could not be reached) makes the
machine's time *unknown* from that moment until its next state reading.

Windows are half-open ``[start, end)``, clipped to the machine's data (first to latest reading);
the latest reading belongs to the last window output. Everything is vectorised over machines.
KPIs are in :mod:`analytics.oee_kpis`.

>>> import numpy as np
>>> from edge_agent.analytics.windows import FixedWindows
>>> cfg = MachineOeeConfig({1: RUNNING, 3: DOWN}, ideal_cycle_s=2.0, counters={GOOD_KIND: 0.0}, microstop_s=20.0)
>>> engine = OeeEngine([cfg], FixedWindows(60 * NS))
>>> m = np.zeros(3, np.intp)
>>> engine.add_states(m, np.array([0, 45, 60]) * NS, np.array([1.0, 3.0, 1.0]))
>>> engine.add_counters(m[:2], np.array([GOOD_KIND] * 2), np.array([0, 45]) * NS, np.array([100.0, 120.0]))
>>> rows = engine.close(final=True)
>>> {COLUMNS[c]: float(rows.elements[0, c]) for c in (C_RUNNING, C_MICROSTOP, C_DOWN, C_GOOD, C_FAILURES)}
{'running_s': 45.0, 'microstop_s': 15.0, 'down_s': 0.0, 'good_delta': 20.0, 'failures': 0.0}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from edge_agent.analytics.episodes import (
    C_BREAK,
    C_DOWN,
    C_ENERGY,
    C_FAILURES,
    C_GOOD,
    C_MICROSTOP,
    C_REJECT,
    C_RESETS,
    C_RUNNING,
    C_TOTAL,
    C_UNATTRIBUTED,
    C_UNSCHEDULED,
    COLUMNS,
    DOWN,
    IDLE,
    NCOL,
    PLANNED_STOP,
    RUNNING,
    SETUP,
    STATE_NAMES,
    UNKNOWN,
    Classified,
    Episodes,
    group_starts,
    order_by,
)
from edge_agent.analytics.schedule import BREAK, WORK, WorkSchedule
from edge_agent.analytics.windows import NS, WindowGrid

__all__ = [
    "COLUMNS",
    "C_BREAK",
    "C_DOWN",
    "C_ENERGY",
    "C_FAILURES",
    "C_GOOD",
    "C_MICROSTOP",
    "C_REJECT",
    "C_RESETS",
    "C_RUNNING",
    "C_TOTAL",
    "C_UNATTRIBUTED",
    "DOWN",
    "IDLE",
    "NCOL",
    "PLANNED_STOP",
    "RUNNING",
    "SETUP",
    "STATE_NAMES",
    "UNKNOWN",
    "MachineOeeConfig",
    "OeeEngine",
    "WindowRows",
]

I64 = NDArray[np.int64]

# Counter kinds (column = C_TOTAL + kind).
TOTAL_KIND, GOOD_KIND, REJECT_KIND, ENERGY_KIND = range(4)
COUNTER_NAMES = ("total", "good", "reject", "energy")


@dataclass(frozen=True)
class MachineOeeConfig:
    """One machine's OEE settings. ``state_map`` maps state codes (0..255) to categories."""

    state_map: dict[int, int]
    default_state: int = DOWN
    ideal_cycle_s: float = 1.0
    stale_after_s: float = 60.0
    #: counter kind -> modulus (0 = no wrap: a drop is a reset).
    counters: dict[int, float] = field(default_factory=lambda: {TOTAL_KIND: 0.0})
    #: Idle and down episodes shorter than this (s) are micro-stops; 0 = none are.
    microstop_s: float = 0.0
    #: A part count increase is believed up to ``(elapsed / ideal_cycle_s + 1) * counter_margin``.
    counter_margin: float = 2.0


@dataclass(frozen=True, slots=True)
class WindowRows:
    """Closed windows: machine, grid key (aligned start), clipped start and end (UTC ns), elements."""

    machine: NDArray[np.intp]
    key: NDArray[np.int64]
    start: NDArray[np.int64]
    end: NDArray[np.int64]
    elements: NDArray[np.float64]
    #: The window covers less than its grid span (the data starts or ends inside it).
    partial: NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.machine.shape[0])

    def take(self, pick: NDArray[np.bool_]) -> WindowRows:
        """The rows ``pick`` selects."""
        return dataclasses.replace(self, **{f.name: getattr(self, f.name)[pick] for f in dataclasses.fields(self)})


class OeeEngine:
    """Streaming OEE accumulator for many machines over one window grid and one work schedule."""

    def __init__(
        self, machines: list[MachineOeeConfig], grid: WindowGrid, schedule: WorkSchedule | None = None
    ) -> None:
        n = len(machines)
        self.grid = grid
        self.schedule = schedule or WorkSchedule(None, [])
        self.configs = machines
        self.code_table = np.empty((n, 256), np.int8)
        for i, cfg in enumerate(machines):
            self.code_table[i] = cfg.default_state
            for code, cat in cfg.state_map.items():
                self.code_table[i, code] = cat
        self.default_state = np.array([c.default_state for c in machines], np.int8)
        self.stale_ns = np.array([int(c.stale_after_s * NS) for c in machines], np.int64)
        self.ideal_cycle_s = np.array([c.ideal_cycle_s for c in machines], np.float64)
        self.margin = np.array([c.counter_margin for c in machines], np.float64)
        self.has_counter = np.zeros((n, 4), bool)
        self.modulus = np.zeros((n, 4), np.float64)
        for i, cfg in enumerate(machines):
            for kind, modulus in cfg.counters.items():
                self.has_counter[i, kind] = True
                self.modulus[i, kind] = modulus
        self.episodes = Episodes(np.array([int(c.microstop_s * NS) for c in machines], np.int64))
        self.held_state = np.full(n, UNKNOWN, np.int8)
        self.held_ts = np.full(n, -1, np.int64)
        #: Time up to which each machine's state time has been attributed (-1: no reading yet).
        self.accounted = np.full(n, -1, np.int64)
        self.first_ts = np.full(n, -1, np.int64)
        self.closed_until = np.full(n, -1, np.int64)
        self.last_count = np.full((n, 4), np.nan)
        self.last_count_ts = np.full((n, 4), -1, np.int64)
        #: Outage times per machine (sorted), until every counter has read past them.
        self.outages: dict[int, NDArray[np.int64]] = {}
        self._open_m = np.empty(0, np.intp)
        self._open_start = np.empty(0, np.int64)
        self._open_end = np.empty(0, np.int64)
        self._open_acc = np.empty((0, NCOL), np.float64)

    # -- data range --------------------------------------------------------------------------
    def observe(self, machine: NDArray[np.intp], ts: NDArray[np.int64]) -> None:
        """Readings of any of a machine's signals: its data (and unknown time) starts at the first."""
        new = self.accounted[machine] < 0
        if not new.any():
            return
        m, t = machine[new], ts[new]
        earliest = np.full(self.accounted.shape[0], np.iinfo(np.int64).max, np.int64)
        np.minimum.at(earliest, m, t)
        fresh = np.unique(m)
        self.accounted[fresh] = self.first_ts[fresh] = earliest[fresh]

    # -- state -------------------------------------------------------------------------------
    def categorize(self, machine: NDArray[np.intp], code: NDArray[np.float64]) -> NDArray[np.int8]:
        """Map state codes to categories: NaN (unreachable) is unknown; other non-integer or
        out-of-range codes take the default."""
        valid = np.isfinite(code) & (code >= 0) & (code < 256) & (code == np.floor(code))
        index = np.where(valid, code, 0).astype(np.intp)
        cat = np.where(valid, self.code_table[machine, index], self.default_state[machine])
        return np.where(np.isnan(code), UNKNOWN, cat).astype(np.int8)

    def add_states(self, machine: NDArray[np.intp], ts: NDArray[np.int64], code: NDArray[np.float64]) -> None:
        """Feed state readings (any order); readings older than what was accounted are ignored.

        A NaN code is an outage: the machine's device could not be reached at that time. Its
        time is unknown from then until its next state reading, and each of its counters
        re-baselines at its first reading after the outage.
        """
        if machine.shape[0] == 0:
            return
        down = np.isnan(code)
        if down.any():
            for mm in np.unique(machine[down]).tolist():
                times = np.concatenate([self.outages.get(mm, np.empty(0, np.int64)), ts[down & (machine == mm)]])
                self.outages[mm] = np.unique(times)
        self.observe(machine, ts)
        order = order_by(machine, ts)
        m, t = machine[order], ts[order]
        cat = self.categorize(m, code[order])
        keep = t >= self.accounted[m]
        m, t, cat = m[keep], t[keep], cat[keep]
        if m.shape[0] == 0:
            return
        first = group_starts(m.astype(np.int64))
        last = np.append(first[1:], True)
        prev_t = np.empty_like(t)
        prev_t[1:] = t[:-1]
        prev_t[first] = self.accounted[m[first]]
        prev_cat = np.empty_like(cat)
        prev_cat[1:] = cat[:-1]
        prev_cat[first] = self.held_state[m[first]]
        prev_held = prev_t.copy()
        prev_held[first] = self.held_ts[m[first]]
        lm = m[last]
        self.held_state[lm] = cat[last]
        self._account(m, prev_t, t, prev_cat, prev_held + self.stale_ns[m])
        self.held_ts[lm] = t[last]
        self.accounted[lm] = t[last]

    def advance(self, now_ns: int) -> None:
        """Attribute time up to ``now_ns`` for machines whose last state reading is older."""
        m = np.flatnonzero((self.accounted >= 0) & (self.accounted < now_ns))
        if m.shape[0] == 0:
            return
        self._account(
            m,
            self.accounted[m],
            np.full(m.shape[0], now_ns, np.int64),
            self.held_state[m],
            self.held_ts[m] + self.stale_ns[m],
        )
        self.accounted[m] = now_ns

    def _account(
        self,
        m: NDArray[np.intp],
        a: NDArray[np.int64],
        b: NDArray[np.int64],
        cat: NDArray[np.int8],
        valid_until: NDArray[np.int64],
    ) -> None:
        """State time ``[a, b)`` in ``cat`` until ``valid_until``, unknown after; then classified."""
        known_end = np.minimum(b, np.maximum(valid_until, a))
        known_end = np.where(cat == UNKNOWN, a, known_end)
        self._spread(
            self.episodes.classify(
                np.concatenate([m, m]),
                np.concatenate([a, known_end]),
                np.concatenate([known_end, b]),
                np.concatenate([cat, np.full(m.shape[0], UNKNOWN, np.int8)]),
                self.held_state,
            )
        )

    def _spread(self, iv: Classified) -> None:
        """Cut classified intervals at window and schedule edges; add their seconds to the windows."""
        m, a, b, col, failure = iv.m, iv.a, iv.b, iv.col, iv.failure
        parts: list[
            tuple[NDArray[np.intp], NDArray[np.int64], NDArray[np.int64], NDArray[np.intp], NDArray[np.float64]]
        ]
        parts = []
        counted: list[NDArray[np.int64]] = []
        while m.shape[0]:
            ws, we = self.grid.locate(a)
            kind, kind_end = self.schedule.locate(a)
            end = np.minimum(np.minimum(b, we), kind_end)
            inside = ws >= 0
            piece_col = np.where(kind == WORK, col, np.where(kind == BREAK, C_BREAK, C_UNSCHEDULED))
            parts.append((m[inside], ws[inside], we[inside], piece_col[inside], (end - a)[inside] / NS))
            # A failure counts once, in the window of its first scheduled second of down time.
            fails = inside & (failure >= 0) & (kind == WORK) & (col == C_DOWN)
            if fails.any():
                ids, at = np.unique(failure[fails], return_index=True)
                rows = np.flatnonzero(fails)[at]
                parts.append((m[rows], ws[rows], we[rows], np.full(rows.shape[0], C_FAILURES), np.ones(rows.shape[0])))
                failure = np.where(np.isin(failure, ids), -1, failure)
                counted.append(ids)
            more = end < b
            m, a, b, col, failure = m[more], end[more], b[more], col[more], failure[more]
        if counted:
            self.episodes.counted(np.concatenate(counted))
        if parts:
            self._accumulate(*(np.concatenate(p) for p in zip(*parts, strict=True)))

    # -- counters ----------------------------------------------------------------------------
    def add_counters(
        self,
        machine: NDArray[np.intp],
        kind: NDArray[np.intp],
        ts: NDArray[np.int64],
        value: NDArray[np.float64],
    ) -> None:
        """Feed counter readings; NaN readings are skipped and keep the previous value."""
        value = np.asarray(value, np.float64)
        good = np.isfinite(value)
        machine, kind, ts, value = machine[good], kind[good], ts[good], value[good]
        if machine.shape[0] == 0:
            return
        self.observe(machine, ts)
        slot = machine.astype(np.int64) * 4 + kind
        order = order_by(slot, ts)
        m, k, t, v, s = machine[order], kind[order], ts[order], value[order], slot[order]
        first = group_starts(s)
        last = np.append(first[1:], True)
        prev = np.empty_like(v)
        prev[1:] = v[:-1]
        prev[first] = self.last_count[m[first], k[first]]
        prev_t = np.empty_like(t)
        prev_t[1:] = t[:-1]
        prev_t[first] = self.last_count_ts[m[first], k[first]]
        rebase = self._across_outage(m, prev_t, t)
        delta = _unwrapped(v - prev, self.modulus[m, k])
        # What the machine could have made since the previous reading (energy: no bound).
        elapsed_s = np.maximum(t - prev_t, 0) / NS
        limit = np.where(k == ENERGY_KIND, np.inf, (elapsed_s / self.ideal_cycle_s[m] + 1.0) * self.margin[m])
        known = np.isfinite(delta)  # the first reading of a counter has nothing to compare with
        believed = known & (delta >= 0) & (delta <= limit)
        counted = believed & ~rebase
        reset = known & ~counted
        # Made meanwhile: the increase over an outage when believable, else what the counter
        # shows when it could have counted that much since a reset (0 otherwise).
        since_reset = (v >= 0) & (v <= limit)
        meanwhile = np.where(believed, delta, np.where(since_reset, v, 0.0))
        # A restart between two readings of one window: what it shows since is that window's.
        restarted = self._inside_one_window(reset & ~believed & ~rebase & since_reset, prev_t, t)
        self.last_count[m[last], k[last]] = v[last]
        self.last_count_ts[m[last], k[last]] = t[last]
        rows = np.flatnonzero(counted | reset)
        col = np.where((counted | restarted)[rows], C_TOTAL + k[rows], C_UNATTRIBUTED + k[rows])
        amount = np.where(counted[rows], delta[rows], meanwhile[rows])
        resets = np.flatnonzero(reset)
        m = np.concatenate([m[rows], m[resets]])
        t = np.concatenate([t[rows], t[resets]])
        col = np.concatenate([col, np.full(resets.shape[0], C_RESETS, np.intp)])
        amount = np.concatenate([amount, np.ones(resets.shape[0])])
        if m.shape[0] == 0:
            return
        # An increase seen after its window closed counts in the next open window.
        at = np.maximum(t, self.closed_until[m])
        ws, we = self.grid.locate(at)
        # A reading exactly at the end of a shift, with no shift following, belongs to that shift.
        off = np.flatnonzero(ws < 0)
        if off.shape[0]:
            before_s, before_e = self.grid.locate(at[off] - 1)
            edge = (before_s >= 0) & (before_e == at[off]) & (before_e > self.closed_until[m[off]])
            ws[off[edge]], we[off[edge]] = before_s[edge], before_e[edge]
        inside = ws >= 0
        self._accumulate(m[inside], ws[inside], we[inside], col[inside], amount[inside])

    def _inside_one_window(
        self, candidates: NDArray[np.bool_], prev_t: NDArray[np.int64], t: NDArray[np.int64]
    ) -> NDArray[np.bool_]:
        """Which ``candidates`` have both readings (``prev_t``, ``t``) in one window of the grid."""
        inside = np.zeros(candidates.shape[0], bool)
        rows = np.flatnonzero(candidates)
        if rows.shape[0]:
            before, _ = self.grid.locate(prev_t[rows])
            now, _ = self.grid.locate(t[rows])
            inside[rows] = (before == now) & (now >= 0)
        return inside

    def _across_outage(self, m: NDArray[np.intp], prev_t: NDArray[np.int64], t: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Whether an outage of machine ``m`` lies in ``(prev_t, t]`` (a counter's last two readings)."""
        out = np.zeros(m.shape[0], bool)
        for mm in list(self.outages):
            times = self.outages[mm]
            rows = np.flatnonzero(m == mm)
            if rows.shape[0]:
                out[rows] = np.searchsorted(times, t[rows], "right") > np.searchsorted(times, prev_t[rows], "right")
            # Outages every counter of the machine has read past are done with.
            counters = self.last_count_ts[mm][self.has_counter[mm]]
            oldest = int(counters.min()) if counters.shape[0] else np.iinfo(np.int64).max
            kept = times[times > oldest]
            if kept.shape[0]:
                self.outages[mm] = kept
            else:
                del self.outages[mm]
        return out

    # -- window store ------------------------------------------------------------------------
    def _accumulate(
        self,
        m: NDArray[np.intp],
        ws: NDArray[np.int64],
        we: NDArray[np.int64],
        col: NDArray[np.intp],
        amount: NDArray[np.float64],
    ) -> None:
        if m.shape[0] == 0:
            return
        if self._open_m.shape[0]:
            # Most rows fall in their machine's latest open window: summed there in one pass.
            n_machines = self.accounted.shape[0]
            latest = np.full(n_machines, np.iinfo(np.int64).min, np.int64)
            np.maximum.at(latest, self._open_m, self._open_start)
            row_of = np.full(n_machines, -1, np.intp)
            is_latest = self._open_start == latest[self._open_m]
            row_of[self._open_m[is_latest]] = np.flatnonzero(is_latest)
            there = ws == latest[m]
            if there.any():
                flat = row_of[m[there]] * NCOL + col[there]
                self._open_acc += np.bincount(flat, weights=amount[there], minlength=self._open_acc.size).reshape(
                    self._open_acc.shape
                )
                if there.all():
                    return
                rest = ~there
                m, ws, we, col, amount = m[rest], ws[rest], we[rest], col[rest], amount[rest]
        n_open = self._open_m.shape[0]
        all_m = np.concatenate([self._open_m, m])
        all_s = np.concatenate([self._open_start, ws])
        all_e = np.concatenate([self._open_end, we])
        order = np.lexsort((all_s, all_m))
        new = group_starts(all_m[order].astype(np.int64), all_s[order])
        group_sorted = np.cumsum(new) - 1
        group = np.empty_like(group_sorted)
        group[order] = group_sorted
        n_groups = int(group_sorted[-1]) + 1
        acc = np.zeros((n_groups, NCOL))
        acc[group[:n_open]] += self._open_acc
        flat = group[n_open:] * NCOL + col
        acc += np.bincount(flat, weights=amount, minlength=n_groups * NCOL).reshape(n_groups, NCOL)
        heads = order[new]
        self._open_m, self._open_start, self._open_end = all_m[heads], all_s[heads], all_e[heads]
        self._open_acc = acc

    def latest_open(self) -> tuple[NDArray[np.intp], NDArray[np.int64], NDArray[np.float64]]:
        """Each machine's latest open window: machines, window keys (UTC ns), time elements so far."""
        if self._open_m.shape[0] == 0:
            return self._open_m, self._open_start, self._open_acc
        order = np.lexsort((self._open_start, self._open_m))
        last = np.append(self._open_m[order][1:] != self._open_m[order][:-1], True)
        pick = order[last]
        return self._open_m[pick], self._open_start[pick], self._open_acc[pick]

    def close(self, final: bool = False) -> WindowRows:
        """Windows that no later reading can change (all, if ``final``: the data ends here).

        A window closes once a state reading lies after its end and none of its time waits for
        an open stop episode to be classified.
        """
        if final:
            self._spread(self.episodes.release())
        m = self._open_m
        limit = self.accounted[m]
        ready = np.minimum(limit - 1, self.episodes.held_from[m])
        done = np.ones(m.shape[0], bool) if final else self._open_end <= ready
        m, key, end, acc = m[done], self._open_start[done], self._open_end[done], self._open_acc[done]
        np.maximum.at(self.closed_until, m, end)
        start = np.maximum(key, self.first_ts[m])
        span_end = end
        if final:
            end = np.minimum(end, np.maximum(limit[done], start))
            m, key, start, end, acc, span_end = self._merge_empty(m, key, start, end, acc, span_end)
        keep = ~done
        self._open_m, self._open_start = self._open_m[keep], self._open_start[keep]
        self._open_end, self._open_acc = self._open_end[keep], self._open_acc[keep]
        order = np.lexsort((key, m))
        partial = (start > key) | (end < span_end)
        return WindowRows(m[order], key[order], start[order], end[order], acc[order], partial[order])

    @staticmethod
    def _merge_empty(
        m: NDArray[np.intp],
        key: NDArray[np.int64],
        start: NDArray[np.int64],
        end: NDArray[np.int64],
        acc: NDArray[np.float64],
        span_end: NDArray[np.int64],
    ) -> tuple[NDArray[np.intp], I64, I64, I64, NDArray[np.float64], I64]:
        """Windows clipped to nothing are dropped; counts at the latest reading join the window before."""
        empty = end <= start
        if not empty.any():
            return m, key, start, end, acc, span_end
        acc = acc.copy()
        position = {(int(m[i]), int(end[i])): i for i in np.flatnonzero(~empty).tolist()}
        for i in np.flatnonzero(empty).tolist():
            before = position.get((int(m[i]), int(start[i])))
            if before is not None:
                acc[before, C_TOTAL:] += acc[i, C_TOTAL:]
        keep = ~empty
        return m[keep], key[keep], start[keep], end[keep], acc[keep], span_end[keep]


def _unwrapped(delta: NDArray[np.float64], modulus: NDArray[np.float64]) -> NDArray[np.float64]:
    """Counter increases, taken modulo the counter's modulus where it has one (> 0).

    Only a drop (a wrap) or a jump past the modulus needs the division.
    """
    fix = (modulus > 0) & ((delta < 0) | (delta >= modulus))
    if fix.any():
        delta[fix] = np.mod(delta[fix], modulus[fix])
    return delta
