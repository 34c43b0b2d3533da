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
from edge_agent.analytics.detectors import DetectorSet, DetectorSettings


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


class AnomalyScorer:
    def __init__(
        self,
        n_signals: int,
        settings: AnomalySettings | None = None,
        low: NDArray[np.float64] | None = None,
        high: NDArray[np.float64] | None = None,
    ) -> None:
        self.settings = settings = settings or AnomalySettings()
        self.n_signals = n_signals
        self.detectors = DetectorSet(n_signals, settings.detectors, low, high)
        self.alarms = Alarms(n_signals, settings.on, settings.off, settings.k_on, settings.k_off, settings.cooldown)
        self.smoothed = np.zeros(n_signals)
        #: Each signal's regime (machine state); -1 before the first.
        self.regime = np.full(n_signals, -1, np.int64)
        self._saved: dict[int, dict[str, Any]] = {}
        self._quiet = np.zeros(n_signals, np.int64)
        self._seen: dict[int, NDArray[np.bool_]] = {}

    def update(
        self, block: NDArray[np.float64], ts: NDArray[np.int64], out: NDArray[np.float64] | None = None
    ) -> tuple[NDArray[np.float64], NDArray[np.uint8], list[AlarmEvent]]:
        """Combined scores, alarm flags and alarm events for a ``[samples, signals]`` block.

        ``ts`` (UTC ns, the block's shape) stamps the alarms and lets the model learn the day.
        """
        scores, fired = self.detectors.update(block, self.settings.on, out, ts)
        if self._quiet.any():
            self._hush(scores)
        if self.settings.smoothing is not None:
            a, sm = self.settings.smoothing, self.smoothed
            for i in range(scores.shape[0]):
                row = scores[i]
                seen = ~np.isnan(row)
                sm[seen] += a * (row[seen] - sm[seen])
                row[seen] = sm[seen]
        flags, events = self.alarms.update(scores, ts, fired)
        return scores, flags, events

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
            self.detectors.load(back, {k: _take(v, back) for k, v in saved.items()})
        if fresh.shape[0]:
            self.detectors.load(fresh, None)
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
        state = self.detectors.save(signals)
        saved = self._saved.setdefault(regime, {})
        for key, value in state.items():
            _put(saved, key, value, signals, self.n_signals)
        self._seen.setdefault(regime, np.zeros(self.n_signals, bool))[signals] = True

    def reset(self, signals: NDArray[np.intp], now_ns: int) -> list[AlarmEvent]:
        """Start ``signals`` afresh (warm-up again, alarms off), e.g. when a machine changes state.

        Alarms still on end at ``now_ns``; their events are returned.
        """
        self.detectors.reset(signals)
        self.smoothed[signals] = 0.0
        return self.alarms.reset(signals, now_ns)


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
