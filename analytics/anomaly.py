"""Anomaly scoring of many signals: a detector set, an optional smoothing, and alarms.

The combined score of a sample is the largest ``score / threshold`` over the detectors of the
set (:mod:`analytics.detectors`), so 1.0 means "at the threshold of the most convinced
detector"; higher is more anomalous. With ``smoothing`` (an EWMA rate in (0, 1]) the combined
score is smoothed per signal before the alarms see it. Alarms use hysteresis
(:mod:`analytics.alarms`). Defaults need no tuning for typical process signals; every
detector parameter may be given per signal as an array.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(11)
>>> block = rng.normal(100.0, 2.0, size=(500, 4))
>>> block[400:, 2] += 30.0          # a level shift on signal 2: alarm at its first sample
>>> ts = np.repeat(np.arange(500, dtype=np.int64)[:, None] * 10**9, 4, axis=1)
>>> scorer = AnomalyScorer(4)
>>> scores, flags, events = scorer.update(block, ts)
>>> [(e.signal, e.start_ns // 10**9) for e in events]
[(2, 400)]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edge_agent.analytics.alarms import AlarmEvent, Alarms
from edge_agent.analytics.condition import Condition
from edge_agent.analytics.detectors import DetectorSet, DetectorSettings, Fired
from edge_agent.analytics.detectors.season import PERIOD
from edge_agent.analytics.machine import Incidents, MachineScore


@dataclass
class AnomalySettings:
    detectors: DetectorSettings = field(default_factory=DetectorSettings)
    on: float = 1.0
    off: float = 0.5
    k_on: int = 1
    k_off: int = 5
    smoothing: float | None = None
    #: Samples after an alarm starts during which the same signal starts no other alarm.
    cooldown: int = 100
    #: Samples after a regime switch that score 0 (the transition itself).
    switch_quiet: int = 3
    #: Rows after a regime switch during which the sums (deviation, shift, variance) stay at 0:
    #: a temperature takes minutes to settle after a machine starts, a forecast tuned on its
    #: steady state does not know that.
    switch_settle: int = 120
    #: Rows after a switch for which a signal still on its way to the state's level stays held.
    switch_settle_max: int = 1200
    #: An alarm's condition lasts while the signal's smoothed level is further than this from its
    #: normal (in sds of a normal chunk's mean) ...
    hold_level: float = 2.0
    #: ... or its smoothed mean squared residual is above this (1 is normal noise).
    hold_spread: float = 3.0
    #: Samples in alarm after which a signal takes what it does now as its new normal (0: never).
    accept_after: int = 2000
    #: Samples an alarm started by a sum (a persistent change: shift, deviation, variance,
    #: departure) lasts at least.
    hold_min: int = 100
    #: Score each machine's signals together (the ``_machine`` score and alarm).
    machine_score: bool = True
    #: A signal whose smoothed level is this many normal sds from its normal scores 1 (``departure``;
    #: 0: off).
    departure: float = 6.0
    #: ... and one whose smoothed level stays this many normal sds away for ``departure_samples``
    #: samples (whole chunks of 8) scores 1 too (0: off): a drift the forecast follows.
    departure_lasting: float = 3.0
    departure_samples: int = 64


class AnomalyScorer:
    """Scores, alarms and (with ``machines``) machine scores and incidents for ``n_signals`` signals.

    ``machines`` gives each signal's machine (``-1``: none); a machine's signals are scored
    together as well (:mod:`analytics.machine`).
    """

    def __init__(
        self,
        n_signals: int,
        settings: AnomalySettings | None = None,
        low: NDArray[np.float64] | None = None,
        high: NDArray[np.float64] | None = None,
        machines: NDArray[np.intp] | None = None,
    ) -> None:
        self.settings = settings = settings or AnomalySettings()
        self.n_signals = n_signals
        self.detectors = DetectorSet(n_signals, settings.detectors, low, high)
        self.alarms = Alarms(
            n_signals,
            settings.on,
            settings.off,
            settings.k_on,
            settings.k_off,
            settings.cooldown,
            settings.hold_min,
            PERSISTENT,
        )
        # The condition knows a signal's normal after 256 samples, or once its surprise is
        # calibrated (``calibrate_after``) if that is sooner.
        model = self.detectors.model
        warm = 32.0 if model is None else np.minimum(np.asarray(model.calibrate_after, np.float64) / PERIOD, 32.0)
        self.condition = Condition(
            n_signals,
            level_limit=settings.hold_level,
            spread_limit=settings.hold_spread,
            warm_chunks=warm,
            far_level=settings.departure_lasting or np.inf,
        )
        self.smoothed = np.zeros(n_signals)
        #: Per signal: held (in its own alarm, or its machine's while away from normal) when the
        #: current chunk began.
        self._held = np.zeros(n_signals, bool)
        #: Each signal's regime (machine state); -1 before the first.
        self.regime = np.full(n_signals, -1, np.int64)
        self._saved: dict[int, dict[str, Any]] = {}
        self._quiet = np.zeros(n_signals, np.int64)
        self._seen: dict[int, NDArray[np.bool_]] = {}
        machine_of = np.full(n_signals, -1, np.intp) if machines is None else np.asarray(machines, np.intp)
        if machine_of.shape != (n_signals,):
            raise ValueError(f"machines gives {machine_of.shape} entries for {n_signals} signals")
        if not settings.machine_score:
            machine_of = np.full(n_signals, -1, np.intp)
        self.machine_of = machine_of
        self.machine = MachineScore(machine_of)
        m = self.machine.n_machines
        # A machine's score alarms when two chunks in a row are over the threshold (its rows carry
        # their chunk's score): the score of one chunk has heavier tails than its chi-square
        # (each level's sd is estimated from few effectively independent chunks), and the second
        # chunk halves its false alarms in normal operation at the cost of 8 samples' delay.
        self.machine_alarms = Alarms(m, settings.on, settings.off, PERIOD + 1, settings.k_off, settings.cooldown)
        self.incidents = Incidents(m)

    @property
    def n_machines(self) -> int:
        return self.machine.n_machines

    def update(
        self, block: NDArray[np.float64], ts: NDArray[np.int64], out: NDArray[np.float64] | None = None
    ) -> tuple[NDArray[np.float64], NDArray[np.uint8], list[AlarmEvent]]:
        """Combined scores, alarm flags and alarm events for a ``[samples, signals]`` block.

        ``ts`` (UTC ns, the block's shape) stamps the alarms and lets the model learn the day.
        The machines' scores, incidents (1 while a machine is abnormal) and incident events of
        the same block are in :attr:`last_machines`.
        """
        block = np.asarray(block, dtype=np.float64)
        if block.ndim != 2 or block.shape[1] != self.n_signals:
            raise ValueError(f"expected a [samples, {self.n_signals}] block, got {block.shape}")
        rows_total, m = block.shape[0], self.n_machines
        scores = np.empty_like(block) if out is None else out
        flags = np.zeros(block.shape, np.uint8)
        machine_scores = np.zeros((rows_total, m))
        incident = np.zeros((rows_total, m), np.uint8)
        machine_ts = np.zeros((rows_total, m), np.int64)
        events: list[AlarmEvent] = []
        machine_events: list[AlarmEvent] = []
        i = 0
        while i < rows_total:
            rows = min(PERIOD - self.detectors.position, rows_total - i)
            part = slice(i, i + rows)
            piece_events, piece_machine = self._piece(block[part], ts[part], scores[part], flags[part])
            events += piece_events
            if m:
                machine_scores[part], incident[part], piece_incidents, machine_ts[part] = piece_machine
                machine_events += piece_incidents
            i += rows
        self.last_machines = MachineResult(machine_scores, incident, machine_events, machine_ts)
        return scores, flags, events

    def _piece(
        self, piece: NDArray[np.float64], ts: NDArray[np.int64], scores: NDArray[np.float64], flags: NDArray[np.uint8]
    ) -> tuple[list[AlarmEvent], _MachinePiece]:
        """Score rows of one chunk of the row clock, then step the alarms, conditions and machines."""
        s = self.settings
        rows = piece.shape[0]
        _, fired = self.detectors.update(piece, s.on, scores, ts)
        if self._quiet.any():
            self._hush(scores)
        if s.smoothing is not None:
            a, sm = s.smoothing, self.smoothed
            for r in range(rows):
                row = scores[r]
                seen = ~np.isnan(row)
                sm[seen] += a * (row[seen] - sm[seen])
                row[seen] = sm[seen]
        # Neither a fault nor a transition is normal. In alarm as the alarms stood when the chunk
        # began: what is learnt must not depend on how the stream was cut.
        held = self._held | self.detectors.settling
        # Every row of a chunk is judged by the condition as it stood when the chunk began (a
        # replay's whole chunk would otherwise see its own end, a live agent's rows would not).
        lasting = self.condition.lasting()
        view = self.detectors.view
        if view is not None and self.detectors.position == 0:
            # A chunk completed: its view's level and spread are the whole chunk's, however the
            # stream was cut (a live agent scores a row or two at a time, a replay whole blocks).
            self.condition.observe(view.level, view.spread, PERIOD, held, view.seasonal, view.plain, view.shaped)
            if s.departure or s.departure_lasting:
                self._departure(scores, fired)
        piece_flags, events = self.alarms.update(scores, ts, fired, lasting)
        flags[:] = piece_flags
        events += self._accept_overdue(ts)
        if self.detectors.position == 0:
            self._held = self._in_alarm()
            if self.detectors.model is not None:
                self.detectors.model.held = self._held
        machine_part: _MachinePiece = (
            np.zeros((rows, 0)),
            np.zeros((rows, 0), np.uint8),
            [],
            np.zeros((rows, 0), np.int64),
        )
        if self.n_machines:
            machine_part = self._machines(scores, ts, flags, rows)
        return events, machine_part

    def _in_alarm(self) -> NDArray[np.bool_]:
        """Per signal: its alarm is on, or its machine's while the signal is itself away from its
        normal (``hold_level`` sds): a signal the machine's fault did not move goes on learning,
        or its natural wander, measured against a normal held still, would keep the machine's
        score in alarm after the fault had ended."""
        if not self.n_machines:
            return self.alarms.active.copy()
        machine = self.machine.to_signals(self.machine_alarms.active)
        if machine.any():
            machine &= np.abs(self.condition.level) > self.condition.level_limit
        in_alarm: NDArray[np.bool_] = self.alarms.active | machine
        return in_alarm

    def _departure(self, scores: NDArray[np.float64], fired: Fired) -> None:
        """Fold in how far each signal's smoothed level is from its normal (``departure`` sds score 1),
        at the piece's last sample (where it was measured): a moderate shift or a slow drift that
        the forecast follows within a hundred samples is still a departure from the normal learnt
        over about a thousand."""
        c = self.condition
        # Not while in alarm, in an alarm's cool-down, or back within the normal chunk by chunk.
        # A residual against a seasonal memory (the day profile) is only as good as that memory:
        # the shift sum covers those signals; the departure is for levels (a cycle's too).
        # Its normal known well (512 samples at least): a departure starts an alarm, not only holds one.
        ready = (c.chunks >= np.maximum(c.warm_chunks * 2, 64)) & ~self.alarms.active & (c.calm < 2) & ~c.residual
        # A temperature heading for its state's level is coming back, not departing.
        ready &= ~self.detectors.settling & ~c.returning
        if self.settings.cooldown:
            ready &= self.alarms.since_start >= self.settings.cooldown
        last = scores[-1]
        # A level that stays ``departure_lasting`` sds away for ``departure_samples`` is a departure
        # too, once the normal is known well: a slow drift the forecast and the normal follow shows
        # so (its spread, learnt over the whole normal history, does not follow).
        s = self.settings
        # On a cycle, a chunk at a steep edge of the cycle's shape can be far from it for a chunk:
        # there a departure takes two chunks in a row.
        limit = np.where(c.shaped & (c.far < 2), np.inf, s.departure or np.inf)
        if s.departure_lasting:
            lasted = (c.far >= -(-s.departure_samples // PERIOD)) & c.known_well
            limit[lasted] = np.minimum(limit[lasted], s.departure_lasting)
        with np.errstate(invalid="ignore"):
            hit = np.flatnonzero(ready & (np.abs(c.level) >= limit * s.on) & ~(last >= s.on))
        if hit.shape[0] == 0:
            return
        last[hit] = np.abs(c.level[hit]) / limit[hit]
        if DEPARTURE not in fired.names:
            fired.names.append(DEPARTURE)
        row = np.full(hit.shape[0], scores.shape[0] - 1, np.intp)
        fired.add(row, hit, np.full(hit.shape[0], fired.names.index(DEPARTURE), np.intp))

    def _machines(
        self,
        scores: NDArray[np.float64],
        ts: NDArray[np.int64],
        flags: NDArray[np.uint8],
        rows: int,
    ) -> _MachinePiece:
        """The machines' scores, alarms and incidents for one piece."""
        machine, alarms = self.machine, self.machine_alarms
        if self.detectors.position == 0:  # a chunk completed: the levels moved, score and learn
            # A machine whose signals are settling after a state change is in transition: its
            # levels are neither normal nor a fault (not scored, not learnt).
            moving = machine.any_member(self.detectors.settling)
            quiet = ~machine.any_member(self.alarms.active) & ~alarms.active & ~moving
            score = machine.update(self.condition.level, self.condition.seen, quiet, PERIOD)
            score[moving] = 0.0
        else:
            score = machine.score
        per_row = np.repeat(score[None], rows, axis=0)
        m_ts = machine.of_members(ts, 0).max(axis=2)
        joint_flags, _ = alarms.update(per_row, m_ts, _MACHINE)
        abnormal = joint_flags.astype(bool) | machine.any_member(flags)
        if not (abnormal.any() or self.incidents.active.any()):  # nothing to report: no peaks needed
            return per_row, abnormal.astype(np.uint8), [], m_ts
        peak = np.fmax(per_row, machine.of_members(np.nan_to_num(scores, nan=0.0), 0.0).max(axis=2))
        cause = [_MACHINE.name if alarms.active[k] else "signal" for k in range(machine.n_machines)]
        incidents = self.incidents.update(abnormal, m_ts, peak, cause)
        return per_row, abnormal.astype(np.uint8), incidents, m_ts

    def _accept_overdue(self, ts: NDArray[np.int64]) -> list[AlarmEvent]:
        """Signals in alarm for ``accept_after`` samples take their present behaviour as normal."""
        after = self.settings.accept_after
        if not after or not self.alarms.active.any():
            return []
        overdue = np.flatnonzero(self.alarms.active & (self.alarms.since_start >= after))
        if overdue.shape[0] == 0:
            return []
        return self.accept(overdue, int(ts[-1].max()))

    def accept(self, signals: NDArray[np.intp], now_ns: int) -> list[AlarmEvent]:
        """The operator (or ``accept_after``) accepts what ``signals`` do now as their normal.

        Their alarms end at ``now_ns`` (the events are returned) and their normal level and noise
        become what they are now (the forecast model's slow mean, held while in alarm, learns the
        new level from then on; its scales went on learning; no warm-up); their
        machines' scores learn afresh.
        """
        signals = np.asarray(signals, np.intp)
        self.condition.accept(signals)
        model = self.detectors.model
        if model is not None and model.cycle is not None:
            # The cycle's memory was fed the old normal while the alarm held it: a new normal
            # learns its cycle afresh (and the level then learns its normal afresh with it).
            cyclic = signals[model.cycle.period[signals] > 0]
            if cyclic.shape[0]:
                model.cycle.reset(cyclic)
        ended = self.alarms.reset(signals, now_ns)
        machines = np.unique(self.machine_of[signals])
        machines = machines[machines >= 0]
        if machines.shape[0]:
            self.machine.reset(machines)
            self.machine_alarms.reset(machines, now_ns)
        return ended

    def switch(self, signals: NDArray[np.intp], regime: int, now_ns: int) -> list[AlarmEvent]:
        """``signals`` enter ``regime`` (a machine state) at ``now_ns``: each regime keeps its own normal.

        What was learnt in the regime they leave is kept for their return; a regime they were
        never in starts afresh (warm-up). Alarms still on end at ``now_ns``; their events are returned.
        """
        signals = np.asarray(signals, np.intp)
        moving = signals[self.regime[signals] != regime]
        if moving.shape[0] == 0:
            return []
        for old in np.unique(self.regime[moving]).tolist():
            leaving = moving[self.regime[moving] == old]
            if old >= 0:
                self._store(old, leaving)
        seen = self._seen.get(regime)
        back = moving[seen[moving]] if seen is not None else moving[:0]
        fresh = moving if seen is None else moving[~seen[moving]]
        if back.shape[0]:
            saved = self._saved[regime]
            self.detectors.load(back, {k: _take(v, back) for k, v in saved.items() if k != _CONDITION})
            self.condition.load(back, _take(saved[_CONDITION], back))
        if fresh.shape[0]:
            self.detectors.load(fresh, None)
            self.condition.reset(fresh)
        changing = moving[self.regime[moving] >= 0]  # the first state a signal is seen in is no change
        self.regime[moving] = regime
        self.smoothed[moving] = 0.0
        # The samples around a switch are the transition itself (power steps, a temperature turns):
        # they score 0 until the short-term history is in the new state.
        self._quiet[changing] = self.settings.switch_quiet
        self.detectors.settle(changing, self.settings.switch_settle, self.settings.switch_settle_max)
        return self.alarms.reset(moving, now_ns)

    def _hush(self, scores: NDArray[np.float64]) -> None:
        """Score 0 for the first ``_quiet`` valid samples of each signal that just switched regime."""
        for col in np.flatnonzero(self._quiet).tolist():
            rows = np.flatnonzero(~np.isnan(scores[:, col]))[: self._quiet[col]]
            scores[rows, col] = 0.0
            self._quiet[col] -= rows.shape[0]

    def _store(self, regime: int, signals: NDArray[np.intp]) -> None:
        state = {**self.detectors.save(signals), _CONDITION: self.condition.save(signals)}
        saved = self._saved.setdefault(regime, {})
        for key, value in state.items():
            _put(saved, key, value, signals, self.n_signals)
        self._seen.setdefault(regime, np.zeros(self.n_signals, bool))[signals] = True

    def reset(self, signals: NDArray[np.intp], now_ns: int) -> list[AlarmEvent]:
        """Start ``signals`` afresh (warm-up again, alarms off), e.g. when a machine changes state.

        Alarms still on end at ``now_ns``; their events are returned.
        """
        self.detectors.reset(signals)
        self.condition.reset(signals)
        self.smoothed[signals] = 0.0
        return self.alarms.reset(signals, now_ns)


#: The detectors whose alarms say that a persistent change began (they last ``hold_min`` samples).
PERSISTENT = frozenset({"shift", "deviation", "variance", "departure"})

#: The key of the condition's state among a regime's saved state.
_CONDITION = "_condition"

#: The name of alarms started by a departure from the normal level.
DEPARTURE = "departure"

#: One piece's machine scores, incident flags, incident events and row times.
_MachinePiece = tuple[NDArray[np.float64], NDArray[np.uint8], list[AlarmEvent], NDArray[np.int64]]


class _MachineNamer:
    """The detector name of a machine score's alarm."""

    name = "machine"

    def get(self, key: tuple[int, int], default: str | None = None) -> str | None:
        return self.name


_MACHINE = _MachineNamer()


@dataclass
class MachineResult:
    """The machines' side of one :meth:`AnomalyScorer.update`.

    ``scores`` ``[rows, machines]`` is each machine's score (T² / threshold, 1 at the threshold);
    ``incident`` is 1 while the machine is abnormal (its score in alarm, or any of its signals);
    ``events`` are the incidents that started or ended (``signal`` is the machine's index).
    """

    scores: NDArray[np.float64]
    incident: NDArray[np.uint8]
    events: list[AlarmEvent]
    #: ``[rows, machines]``: each row's latest sample time of the machine's signals (UTC ns; 0: none).
    ts: NDArray[np.int64]


def _take(value: Any, signals: NDArray[np.intp]) -> Any:
    """The entries of ``signals`` from a saved state (a dict of per-signal arrays, nested)."""
    if isinstance(value, dict):
        return {k: _take(v, signals) for k, v in value.items()}
    return value[signals]


def _put(saved: dict[str, Any], key: str, value: Any, signals: NDArray[np.intp], n: int) -> None:
    """Write a state for ``signals`` into ``saved[key]`` (arrays over all ``n`` signals)."""
    if isinstance(value, dict):
        inner = saved.setdefault(key, {})
        for k, v in value.items():
            _put(inner, k, v, signals, n)
        return
    if key not in saved:
        saved[key] = np.zeros(n, np.asarray(value).dtype)
    saved[key][signals] = value
