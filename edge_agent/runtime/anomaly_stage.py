"""The pipeline's anomaly stage: scores every analog sample, turns alarms into events.

Samples arrive as a columnar batch with irregular times per signal; they are laid out as a
time-major block (one column per analog signal, one row per sample of that signal in this tick)
and scored in one pass. Each signal's highest score per ``score_interval`` becomes an ``anomaly``
point (every score when the interval is 0; :mod:`edge_agent.runtime.peaks`); each alarm that starts or ends
becomes an ``alarm`` point (``active`` 1 at its start; 0, ``duration_s`` and ``peak`` at its end),
tagged with the detector that fired. Each machine state keeps its own normal for the machine's
signals (``baselines_per_state``): vibration and power legitimately differ between running and
idle, so on a state change the signals' detectors take up what they learnt in the new state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from edge_agent.analytics.alarms import AlarmEvent
from edge_agent.analytics.anomaly import AnomalyScorer
from edge_agent.analytics.detectors import REGISTRY
from edge_agent.analytics.detectors.plausible import IMPLAUSIBLE
from edge_agent.collectors.batch import QUALITY_GOOD, Batch
from edge_agent.config.anomaly import AnomalyBase, anomaly_settings
from edge_agent.runtime.layout import ROLE_STATE, Layout
from edge_agent.runtime.peaks import PeakPerInterval
from edge_agent.schema import ALARM, ANOMALY
from edge_agent.store.catalog import Series
from edge_agent.store.series import SeriesRegistry

log = logging.getLogger(__name__)


#: No reading is waiting to be scored (a time after any other, UTC ns).
_NEVER = np.iinfo(np.int64).max

#: Decimals of a written score (1 is the alarm threshold): finer is noise, and a number of at
#: most 9 decimals is written by the sinks in bulk instead of one Python ``repr`` per point.
SCORE_DECIMALS = 4


def written(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    """Scores as they are written: rounded to ``SCORE_DECIMALS``."""
    return np.round(scores, SCORE_DECIMALS)


class AnomalyStage:
    """Scores the layout's analog signals (its ``scored``); owned by the tick's thread."""

    def __init__(self, section: AnomalyBase, layout: Layout, series: SeriesRegistry) -> None:
        signals = layout.scored
        self.section, self.signals, self.layout = section, signals, layout
        n = len(signals)
        low = np.array([np.nan if s.low is None else s.low for s in signals])
        high = np.array([np.nan if s.high is None else s.high for s in signals])
        #: Each signal's machine for the machine score (-1: scored alone): the signals of one line
        #: and machine (over all its devices) are one machine when there are two or more of them.
        self.group, self.group_tags = machine_groups([s.tags for s in signals])
        settings = anomaly_settings(section, [s.key for s in signals])
        self.scorer = AnomalyScorer(n, settings, low, high, machines=self.group)
        if n:
            detectors = self.scorer.detectors
            log.info(
                "anomaly: %d signals, detectors %s (%s)",
                n,
                ", ".join(detectors.names),
                "on the forecast model, by chunks" if detectors.kernel == "chunked" else "row by row",
            )
        self.score_ids = series.register(Series.of(ANOMALY, s.tags, "score") for s in signals)
        #: Alarm tags: the detectors of the set, ``implausible`` (a reading no instrument makes), and
        #: ``combined`` when no single one reached the threshold.
        self.detector_tags = (*[d for d in section.detectors if d in REGISTRY], IMPLAUSIBLE, "combined")
        self.series = series
        # Alarm series are registered when a signal first alarms: most signals never do.
        self._alarm_ids: dict[tuple[str, int, str], list[int]] = {}
        size = max((s.raw_id for s in signals), default=-1) + 1
        self.column = np.full(size, -1, np.intp)
        for col, s in enumerate(signals):
            self.column[s.raw_id] = col
        self.machine = np.array([s.machine for s in signals], np.intp)
        #: Latest combined score per signal (for the terminal view and health).
        self.latest = np.zeros(n)
        self.peaks = PeakPerInterval(n, int(section.score_interval * 1e9))
        n_groups = self.scorer.n_machines
        self.machine_score_ids = series.register([Series.of(ANOMALY, t, "score") for t in self.group_tags[:n_groups]])
        self.machine_peaks = PeakPerInterval(n_groups, int(section.score_interval * 1e9))
        self.events: list[AlarmEvent] = []
        self._pending_events: list[AlarmEvent] = []
        machines = layout.machines
        #: Each machine's latest state code and when it was read (UTC ns).
        self.state_code = np.full(len(machines), np.nan)
        self._state_ns = np.full(len(machines), np.iinfo(np.int64).min // 2, np.int64)
        #: How far before the reading that shows a new state the change may be dated: two polls.
        self._state_lead_ns = np.array([2 * m.poll_ns for m in machines], np.int64)
        #: How much longer than ``settle`` each raw series' readings wait to be scored (ns): a
        #: machine's analog signals wait for the state readings that may date a change before them.
        self._score_lead = np.zeros(size, np.int64)
        for s in signals:
            if s.machine >= 0:
                self._score_lead[s.raw_id] = self._state_lead_ns[s.machine]
        #: Readings waiting to be scored, in arrival order: (readings, when each is due (UTC ns),
        #: the earliest and the latest of those). Owned by the tick's thread.
        self._waiting: list[tuple[Batch, NDArray[np.int64], int, int]] = []
        #: Readings due but not scored yet (see ``score_wait``), how many, and the earliest time one
        #: of them was due (UTC ns). Owned by the tick's thread.
        self._ready: list[Batch] = []
        self._ready_count = 0
        self._ready_since = _NEVER
        self.wait_ns = int(section.score_wait * 1e9)
        #: Enough readings to score at once: two per scored signal on average.
        self.dense_count = 2 * n

    def score_readings(self, raw: Batch, cutoff_ns: int, hold: bool = True) -> Batch:
        """Anomaly scores of the readings up to ``cutoff_ns``; a machine whose state changed takes up
        that state's normal.

        Readings wait ``settle`` like the OEE's (the caller's ``cutoff_ns``), and a machine's analog
        readings wait two of its polls longer than its state readings: a state change that shows one
        poll after its effect (power dropping with the machine), or that a subscription reports
        late, is then in place before the samples it explains are scored. At the end (``hold``
        False) nothing waits.
        """
        if self.column.shape[0] == 0:
            return self.score(Batch.empty(), [])
        if len(raw):
            is_state = self.layout.role[raw.signal] == ROLE_STATE
            fresh = raw.take(self.wanted(raw) | is_state)
            if len(fresh):
                due = fresh.ts.copy()
                inside = fresh.signal < self._score_lead.shape[0]
                due[inside] += self._score_lead[fresh.signal[inside]]
                self._waiting.append((fresh, due, int(due.min()), int(due.max())))
        # Each tick looks at each waiting part's bounds only; a part is split only when the cut-off
        # falls inside it (readings arrive roughly in time order: most parts go whole).
        ready = self._ready
        waiting: list[tuple[Batch, NDArray[np.int64], int, int]] = []
        for part in self._waiting:
            batch, due, first, last = part
            if not hold:
                go = batch.ts <= cutoff_ns
            elif last <= cutoff_ns:
                ready.append(batch)
                self._ready_count += len(batch)
                self._ready_since = min(self._ready_since, first)
                continue
            elif first > cutoff_ns:
                waiting.append(part)
                continue
            else:
                go = due <= cutoff_ns
            taken = batch.take(go)
            ready.append(taken)
            if len(taken):
                self._ready_count += len(taken)
                self._ready_since = min(self._ready_since, int(due[go].min()))
            if not go.all():
                left = due[~go]
                waiting.append((batch.take(~go), left, int(left.min()), int(left.max())))
        self._waiting = waiting
        # The scorer's cost grows with its block's rows whatever their share of readings: sparse
        # ticks (each signal polled every second, ticks four times a second) are gathered first.
        if hold and self._ready_count < self.dense_count and cutoff_ns - self._ready_since < self.wait_ns:
            return self._flush_pending()
        self._ready, self._ready_count, self._ready_since = [], 0, _NEVER
        now = Batch.concat(ready) if ready else Batch.empty()
        return self.score(now, self._state_changes(now))

    def open_alarms(self) -> list[tuple[str, str, int, float]]:
        """The alarms on now: (device.signal, detector, since UTC ns, peak score so far)."""
        alarms = self.scorer.alarms
        return [
            (self.signals[i].key, alarms.detector[i], int(alarms.start_ns[i]), float(alarms.peak[i]))
            for i in np.flatnonzero(alarms.active).tolist()
        ]

    def machine_scores(self, machines: int) -> NDArray[np.float64]:
        """Each machine's highest latest score over its signals (0 for one without)."""
        out = np.zeros(machines)
        for m in range(machines):
            cols = np.flatnonzero(self.machine == m)
            if cols.shape[0]:
                out[m] = float(np.nanmax(self.latest[cols]))
        return out

    def _state_changes(self, raw: Batch) -> list[tuple[int, int, int]]:
        """``(time ns, machine, state code)`` of every state a machine entered in ``raw``, in time order.

        A change is dated at the last reading that still showed the old state, at most two polls
        before the reading that shows the new one (a poll's readings share its time): the machine
        changed somewhere in between, and when the state is read in another request than the
        other values (a Modbus holding block, then an input block), the poll before may already
        show the new power. Those readings then fall in the new state's first samples, which
        score 0.
        """
        if not len(raw) or not self.state_code.shape[0]:
            return []
        layout = self.layout
        state = np.flatnonzero((layout.role[raw.signal] == ROLE_STATE) & (raw.quality == QUALITY_GOOD))
        changes: list[tuple[int, int, int]] = []
        for i in state[np.argsort(raw.ts[state], kind="stable")].tolist():
            m, code, ts = int(layout.role_machine[raw.signal[i]]), float(raw.value[i]), int(raw.ts[i])
            if code != self.state_code[m] and np.isfinite(code):
                at = max(ts - int(self._state_lead_ns[m]), int(self._state_ns[m]))
                changes.append((at, m, int(code)))
            self.state_code[m], self._state_ns[m] = code, ts
        changes.sort(key=lambda c: c[0])
        return changes

    def _switch(self, machine: int, state: int, at_ns: int) -> None:
        """A machine entered ``state`` at ``at_ns``: its signals take up that state's normal."""
        ended = self.scorer.switch(np.flatnonzero(self.machine == machine), state, at_ns)
        self.events += ended
        self._pending_events += ended

    def score(self, raw: Batch, changes: list[tuple[int, int, int]] | None = None) -> Batch:
        """Score a tick; ``changes`` lists ``(time UTC ns, machine, state code)`` in time order.

        Samples before a change are scored in the state they were taken in.
        """
        if not changes or not self.section.baselines_per_state or len(raw) == 0:
            return self._score(raw)
        parts = []
        for at_ns, machine, state in changes:
            before = raw.ts < at_ns
            parts.append(self._score(raw.take(before)))
            raw = raw.take(~before)
            self._switch(machine, state, at_ns)
        parts.append(self._score(raw))
        return Batch.concat(parts)

    def wanted(self, raw: Batch) -> NDArray[np.bool_]:
        """The readings of ``raw`` this stage scores (good samples of analog signals)."""
        inside = raw.signal < self.column.shape[0]
        col = np.full(len(raw), -1, np.intp)
        col[inside] = self.column[raw.signal[inside]]
        wanted: NDArray[np.bool_] = (col >= 0) & (raw.quality == QUALITY_GOOD)
        return wanted

    def _score(self, raw: Batch) -> Batch:
        if len(raw) == 0 or self.column.shape[0] == 0:
            return self._flush_pending()
        inside = raw.signal < self.column.shape[0]
        col = np.full(len(raw), -1, np.intp)
        col[inside] = self.column[raw.signal[inside]]
        pick = np.flatnonzero((col >= 0) & (raw.quality == QUALITY_GOOD))
        if pick.shape[0] == 0:
            return self._flush_pending()
        order = pick[np.lexsort((raw.ts[pick], col[pick]))]
        cols = col[order]
        starts = np.r_[0, np.flatnonzero(np.diff(cols)) + 1]
        sizes = np.diff(np.r_[starts, cols.shape[0]])
        rank = np.arange(cols.shape[0]) - np.repeat(starts, sizes)
        block = np.full((int(sizes.max()), self.scorer.n_signals), np.nan)
        ts_block = np.zeros(block.shape, np.int64)
        block[rank, cols] = raw.value[order]
        ts_block[rank, cols] = raw.ts[order]
        scores_block, _, events = self.scorer.update(block, ts_block)
        scores = scores_block[rank, cols]
        tail = starts + sizes - 1
        self.latest[cols[tail]] = scores[tail]
        self.events += events
        del self.events[:-1000]
        p_col, p_ts, p_score = self.peaks.add(cols, raw.ts[order], scores)
        points = [Batch(p_ts, self.score_ids[p_col], written(p_score), np.zeros(p_col.shape[0], np.uint8))]
        points.append(self._alarm_points(self._pending_events + events))
        self._pending_events = []
        if self.scorer.n_machines:
            points.append(self._machine_points())
        return Batch.concat(points)

    def _machine_points(self) -> Batch:
        """The machines' score peaks and incident events of the block just scored (``_machine``)."""
        result = self.scorer.last_machines
        rows, machines = np.nonzero(result.ts > 0)
        order = np.lexsort((result.ts[rows, machines], machines))  # by machine, then time
        rows, machines = rows[order], machines[order]
        m_col, m_ts, m_score = self.machine_peaks.add(
            machines, result.ts[rows, machines], result.scores[rows, machines]
        )
        peaks = Batch(m_ts, self.machine_score_ids[m_col], written(m_score), np.zeros(m_col.shape[0], np.uint8))
        return Batch.concat([peaks, self._alarm_points(result.events, self._machine_alarm_series)])

    def flush(self) -> Batch:
        """At the end of a run: the open intervals' peak scores, and alarm events not yet written."""
        p_col, p_ts, p_score = self.peaks.flush()
        peaks = Batch(p_ts, self.score_ids[p_col], written(p_score), np.zeros(p_col.shape[0], np.uint8))
        m_col, m_ts, m_score = self.machine_peaks.flush()
        machine_peaks = Batch(m_ts, self.machine_score_ids[m_col], written(m_score), np.zeros(m_col.shape[0], np.uint8))
        return Batch.concat([peaks, machine_peaks, self._flush_pending()])

    def _flush_pending(self) -> Batch:
        points = self._alarm_points(self._pending_events)
        self._pending_events = []
        return points

    def _alarm_series(self, signal: int, detector: str) -> list[int]:
        """Series ids of ``active``, ``duration_s`` and ``peak`` for one signal and detector."""
        detector = detector if detector in self.detector_tags else "combined"
        return self._alarm_ids_of(("signal", signal, detector), {**self.signals[signal].tags, "detector": detector})

    def _machine_alarm_series(self, machine: int, cause: str) -> list[int]:
        """Series ids of a machine's ``_machine`` alarm: ``detector`` is ``machine`` when its own score
        started it, ``signal`` when one of its signals did."""
        return self._alarm_ids_of(("machine", machine, cause), {**self.group_tags[machine], "detector": cause})

    def _alarm_ids_of(self, key: tuple[str, int, str], tags: dict[str, str]) -> list[int]:
        ids = self._alarm_ids.get(key)
        if ids is None:
            fields = ("active", "duration_s", "peak")
            ids = self.series.register([Series.of(ALARM, tags, f) for f in fields]).tolist()
            self._alarm_ids[key] = ids
        return ids

    def _alarm_points(self, events: list[AlarmEvent], lookup: Callable[[int, str], list[int]] | None = None) -> Batch:
        lookup = lookup or self._alarm_series
        ts: list[int] = []
        ids: list[int] = []
        values: list[float] = []
        for e in events:
            active, duration, peak = lookup(e.signal, e.detector)
            if e.new:
                ts.append(e.start_ns)
                ids.append(active)
                values.append(1.0)
            if e.end_ns is not None:
                ts += [e.end_ns] * 3
                ids += [active, duration, peak]
                values += [0.0, (e.end_ns - e.start_ns) / 1e9, e.peak]
        if not ts:
            return Batch.empty()
        return Batch.of(np.asarray(ts, np.int64), ids, values)


#: The tags that name a machine (its signals share them); a ``_machine`` series carries these.
MACHINE_TAGS = ("site", "workshop", "agent", "line", "machine")


def machine_groups(tags: list[dict[str, str]]) -> tuple[NDArray[np.intp], list[dict[str, str]]]:
    """Each signal's machine (signals sharing site, workshop, line and machine; -1 for a machine
    with a single scored signal) and each machine's tags (``signal`` is ``_machine``)."""
    keys = [tuple(t.get(k, "") for k in MACHINE_TAGS) for t in tags]
    counts: dict[tuple[str, ...], int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    index: dict[tuple[str, ...], int] = {}
    group = np.full(len(tags), -1, np.intp)
    group_tags: list[dict[str, str]] = []
    for i, key in enumerate(keys):
        if counts[key] < 2:
            continue
        if key not in index:
            index[key] = len(group_tags)
            group_tags.append({**{k: v for k, v in zip(MACHINE_TAGS, key, strict=True) if v}, "signal": "_machine"})
        group[i] = index[key]
    return group, group_tags
