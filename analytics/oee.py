"""OEE time elements per machine and window, computed as readings arrive (ISO 22400-2 terms).

Inputs are readings of each machine's state signal (a code mapped to a category) and of its
counters (total, good, reject; energy). Per window the engine accumulates seconds in each
category, pro-rata when a state spans a window edge, and counter increases in the window that
holds the later of two readings. Counters may wrap (``modulus``: the value after
``modulus - 1`` is 0) or, without a modulus, reset: a drop then counts on from 0.

A state holds from its reading until the next reading, but never longer than ``stale_after``:
the rest is *unknown* time, which leaves planned busy time. Everything is vectorised over
machines: one engine serves a whole workshop.

KPIs (:func:`kpis`) follow ISO 22400-2 with APT = running time:
``availability = APT / PBT``, ``performance = PRI * PQ / APT``, ``quality = GQ / PQ``,
``oee = PRI * GQ / PBT``; PBT = scheduled - planned stop - unknown. A ratio whose denominator
is 0 is NaN here and absent in output.

>>> import numpy as np
>>> from analytics.windows import FixedWindows
>>> cfg = MachineOeeConfig({1: RUNNING, 3: DOWN}, ideal_cycle_s=2.0, counters={GOOD_KIND: 0.0})
>>> engine = OeeEngine([cfg], FixedWindows(60 * NS))
>>> m = np.zeros(3, np.intp)
>>> engine.add_states(m, np.array([0, 45, 60]) * NS, np.array([1.0, 3.0, 1.0]))
>>> engine.add_counters(m[:2], np.array([GOOD_KIND] * 2), np.array([0, 45]) * NS, np.array([100.0, 120.0]))
>>> rows = engine.close()
>>> k = kpis(rows.elements, np.array([2.0]), engine.has_counter[rows.machine])
>>> round(float(k["availability"][0]), 3), round(float(k["performance"][0]), 3)
(0.75, 0.889)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from analytics.windows import NS, WindowGrid

# Categories of machine state (and the time columns they accumulate in).
RUNNING, IDLE, DOWN, SETUP, PLANNED_STOP, UNKNOWN = range(6)
STATE_NAMES = ("running", "idle", "down", "setup", "planned_stop")
# Counter kinds (column = TOTAL + kind).
TOTAL_KIND, GOOD_KIND, REJECT_KIND, ENERGY_KIND = range(4)
COUNTER_NAMES = ("total", "good", "reject", "energy")
TOTAL, GOOD, REJECT, ENERGY = 6, 7, 8, 9
#: Columns of a window's element row: seconds for 0..5, counts for 6..8, kWh for 9.
COLUMNS = (
    "running_s",
    "idle_s",
    "down_s",
    "setup_s",
    "planned_stop_s",
    "unknown_s",
    "total_delta",
    "good_delta",
    "reject_delta",
    "energy_kwh",
)
NCOL = len(COLUMNS)


@dataclass(frozen=True)
class MachineOeeConfig:
    """One machine's OEE settings. ``state_map`` maps state codes (0..255) to categories."""

    state_map: dict[int, int]
    default_state: int = DOWN
    ideal_cycle_s: float = 1.0
    stale_after_s: float = 60.0
    #: counter kind -> modulus (0 = no wrap: a drop is a reset).
    counters: dict[int, float] = field(default_factory=lambda: {TOTAL_KIND: 0.0})


@dataclass(frozen=True, slots=True)
class WindowRows:
    """Closed windows: machine index, start and end (UTC ns), elements ``[n, NCOL]``."""

    machine: NDArray[np.intp]
    start: NDArray[np.int64]
    end: NDArray[np.int64]
    elements: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.machine.shape[0])


def _group_starts(*keys: NDArray[np.int64]) -> NDArray[np.bool_]:
    """True where a row starts a new run of equal keys (rows already sorted by the keys)."""
    n = keys[0].shape[0]
    new = np.zeros(n, bool)
    if n:
        new[0] = True
        for k in keys:
            new[1:] |= k[1:] != k[:-1]
    return new


class OeeEngine:
    """Streaming OEE accumulator for many machines over one window grid."""

    def __init__(self, machines: list[MachineOeeConfig], grid: WindowGrid) -> None:
        n = len(machines)
        self.grid = grid
        self.configs = machines
        self.code_table = np.empty((n, 256), np.int8)
        for i, cfg in enumerate(machines):
            self.code_table[i] = cfg.default_state
            for code, cat in cfg.state_map.items():
                self.code_table[i, code] = cat
        self.default_state = np.array([c.default_state for c in machines], np.int8)
        self.stale_ns = np.array([int(c.stale_after_s * NS) for c in machines], np.int64)
        self.ideal_cycle_s = np.array([c.ideal_cycle_s for c in machines], np.float64)
        self.has_counter = np.zeros((n, 4), bool)
        self.modulus = np.zeros((n, 4), np.float64)
        for i, cfg in enumerate(machines):
            for kind, modulus in cfg.counters.items():
                self.has_counter[i, kind] = True
                self.modulus[i, kind] = modulus
        self.held_state = np.full(n, -1, np.int8)
        self.held_ts = np.full(n, -1, np.int64)
        #: Time up to which each machine's state time has been attributed (-1: no reading yet).
        self.accounted = np.full(n, -1, np.int64)
        self.first_ts = np.full(n, -1, np.int64)
        self.closed_until = np.full(n, -1, np.int64)
        self.last_count = np.full((n, 4), np.nan)
        self._open_m = np.empty(0, np.intp)
        self._open_start = np.empty(0, np.int64)
        self._open_end = np.empty(0, np.int64)
        self._open_acc = np.empty((0, NCOL), np.float64)

    # -- state -------------------------------------------------------------------------------
    def categorize(self, machine: NDArray[np.intp], code: NDArray[np.float64]) -> NDArray[np.int8]:
        """Map state codes to categories; non-integer or out-of-range codes take the default."""
        valid = np.isfinite(code) & (code >= 0) & (code < 256) & (code == np.floor(code))
        index = np.where(valid, code, 0).astype(np.intp)
        return np.where(valid, self.code_table[machine, index], self.default_state[machine])

    def add_states(self, machine: NDArray[np.intp], ts: NDArray[np.int64], code: NDArray[np.float64]) -> None:
        """Feed state readings (any order); readings older than what was accounted are ignored."""
        if machine.shape[0] == 0:
            return
        order = np.lexsort((ts, machine))
        m, t = machine[order], ts[order]
        cat = self.categorize(m, code[order])
        keep = t >= self.accounted[m]
        m, t, cat = m[keep], t[keep], cat[keep]
        if m.shape[0] == 0:
            return
        first = _group_starts(m.astype(np.int64))
        last = np.zeros_like(first)
        last[:-1] = first[1:]
        last[-1] = True
        prev_t = np.empty_like(t)
        prev_t[1:] = t[:-1]
        prev_t[first] = self.accounted[m[first]]
        prev_cat = np.empty_like(cat)
        prev_cat[1:] = cat[:-1]
        prev_cat[first] = self.held_state[m[first]]
        prev_held = prev_t.copy()
        prev_held[first] = self.held_ts[m[first]]
        ok = (prev_t >= 0) & (prev_cat >= 0)
        self._account(m[ok], prev_t[ok], t[ok], prev_cat[ok], prev_held[ok] + self.stale_ns[m[ok]])
        lm = m[last]
        self.held_state[lm] = cat[last]
        self.held_ts[lm] = t[last]
        self.accounted[lm] = t[last]
        fresh = self.first_ts[m[first]] < 0
        self.first_ts[m[first][fresh]] = t[first][fresh]

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
        known_end = np.minimum(b, np.maximum(valid_until, a))
        has_known = known_end > a
        has_unknown = b > known_end
        self._spread(
            np.concatenate([m[has_known], m[has_unknown]]),
            np.concatenate([a[has_known], known_end[has_unknown]]),
            np.concatenate([known_end[has_known], b[has_unknown]]),
            np.concatenate([cat[has_known].astype(np.intp), np.full(int(has_unknown.sum()), UNKNOWN)]),
        )

    def _spread(self, m: NDArray[np.intp], a: NDArray[np.int64], b: NDArray[np.int64], col: NDArray[np.intp]) -> None:
        """Split intervals at window edges and add their seconds to column ``col``."""
        parts: list[
            tuple[
                NDArray[np.intp],
                NDArray[np.int64],
                NDArray[np.int64],
                NDArray[np.intp],
                NDArray[np.float64],
            ]
        ] = []
        while m.shape[0]:
            ws, we = self.grid.locate(a)
            end = np.minimum(b, we)
            inside = ws >= 0
            parts.append((m[inside], ws[inside], we[inside], col[inside], (end - a)[inside] / NS))
            more = end < b
            m, a, b, col = m[more], end[more], b[more], col[more]
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
        slot = machine.astype(np.int64) * 4 + kind
        order = np.lexsort((ts, slot))
        m, k, t, v, s = machine[order], kind[order], ts[order], value[order], slot[order]
        first = _group_starts(s)
        last = np.zeros_like(first)
        last[:-1] = first[1:]
        last[-1] = True
        prev = np.empty_like(v)
        prev[1:] = v[:-1]
        prev[first] = self.last_count[m[first], k[first]]
        delta = v - prev
        mod = self.modulus[m, k]
        wraps = mod > 0
        delta[wraps] = np.mod(delta[wraps], mod[wraps])
        reset = ~wraps & (delta < 0)
        delta[reset] = v[reset]
        self.last_count[m[last], k[last]] = v[last]
        counted = np.isfinite(delta)
        m, k, t, delta = m[counted], k[counted], t[counted], delta[counted]
        if m.shape[0] == 0:
            return
        # An increase seen after its window closed counts in the next open window.
        ws, we = self.grid.locate(np.maximum(t, self.closed_until[m]))
        inside = ws >= 0
        self._accumulate(m[inside], ws[inside], we[inside], TOTAL + k[inside], delta[inside])

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
        n_open = self._open_m.shape[0]
        all_m = np.concatenate([self._open_m, m])
        all_s = np.concatenate([self._open_start, ws])
        all_e = np.concatenate([self._open_end, we])
        order = np.lexsort((all_s, all_m))
        new = _group_starts(all_m[order].astype(np.int64), all_s[order])
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

    def close(self, final: bool = False) -> WindowRows:
        """Windows whose end every state reading of the machine has passed (all, if ``final``).

        With ``final`` an unfinished window ends where its machine's data ends.
        """
        limit = self.accounted[self._open_m]
        done = np.ones(self._open_m.shape[0], bool) if final else self._open_end <= limit
        m, start, end = self._open_m[done], self._open_start[done], self._open_end[done]
        if final:
            end = np.where(limit[done] > start, np.minimum(end, limit[done]), end)
        rows = WindowRows(m, start, end, self._open_acc[done])
        np.maximum.at(self.closed_until, m, end)
        keep = ~done
        self._open_m, self._open_start = self._open_m[keep], self._open_start[keep]
        self._open_end, self._open_acc = self._open_end[keep], self._open_acc[keep]
        return rows


def kpis(
    elements: NDArray[np.float64],
    ideal_cycle_s: NDArray[np.float64],
    has_counter: NDArray[np.bool_],
) -> dict[str, NDArray[np.float64]]:
    """Time elements (s), quantities (counts) and ratios (0..1, NaN when undefined) per row."""
    e = elements
    scheduled = e[:, : UNKNOWN + 1].sum(axis=1)
    planned_busy = scheduled - e[:, PLANNED_STOP] - e[:, UNKNOWN]
    actual = e[:, RUNNING]
    has_total, has_good = has_counter[:, TOTAL_KIND], has_counter[:, GOOD_KIND]
    produced = np.where(has_total, e[:, TOTAL], e[:, GOOD] + e[:, REJECT])
    good = np.where(has_good, e[:, GOOD], produced - e[:, REJECT])
    reject = produced - good

    def ratio(num: NDArray[np.float64], den: NDArray[np.float64]) -> NDArray[np.float64]:
        out = np.full(num.shape, np.nan)
        np.divide(num, den, out=out, where=den > 0)
        return out

    return {
        "scheduled_s": scheduled,
        "planned_busy_s": planned_busy,
        "actual_production_s": actual,
        "ideal_produced_s": ideal_cycle_s * produced,
        "ideal_good_s": ideal_cycle_s * good,
        "produced": produced,
        "good": good,
        "reject": reject,
        "availability": ratio(actual, planned_busy),
        "performance": ratio(ideal_cycle_s * produced, actual),
        "quality": ratio(good, produced),
        "oee": ratio(ideal_cycle_s * good, planned_busy),
    }
