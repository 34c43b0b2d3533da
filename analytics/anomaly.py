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
>>> block[400:, 2] += 30.0          # a level shift on signal 2: alarm confirmed by the 2nd sample
>>> ts = np.repeat(np.arange(500, dtype=np.int64)[:, None] * 10**9, 4, axis=1)
>>> scorer = AnomalyScorer(4)
>>> scores, flags, events = scorer.update(block, ts)
>>> [(e.signal, e.start_ns // 10**9) for e in events]
[(2, 401)]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from analytics.alarms import AlarmEvent, Alarms
from analytics.detectors import DetectorSet, DetectorSettings


@dataclass
class AnomalySettings:
    detectors: DetectorSettings = field(default_factory=DetectorSettings)
    on: float = 1.0
    off: float = 0.5
    k_on: int = 2
    k_off: int = 5
    smoothing: float | None = None


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
        self.alarms = Alarms(n_signals, settings.on, settings.off, settings.k_on, settings.k_off)
        self.smoothed = np.zeros(n_signals)

    def update(
        self, block: NDArray[np.float64], ts: NDArray[np.int64], out: NDArray[np.float64] | None = None
    ) -> tuple[NDArray[np.float64], NDArray[np.uint8], list[AlarmEvent]]:
        """Combined scores, alarm flags and alarm events for a ``[samples, signals]`` block."""
        scores, fired = self.detectors.update(block, self.settings.on, out)
        if self.settings.smoothing is not None:
            a, sm = self.settings.smoothing, self.smoothed
            for i in range(scores.shape[0]):
                row = scores[i]
                seen = ~np.isnan(row)
                sm[seen] += a * (row[seen] - sm[seen])
                row[seen] = sm[seen]
        flags, events = self.alarms.update(scores, ts, fired)
        return scores, flags, events

    def reset(self, signals: NDArray[np.intp], now_ns: int) -> list[AlarmEvent]:
        """Start ``signals`` afresh (warm-up again, alarms off), e.g. when a machine changes state.

        Alarms still on end at ``now_ns``; their events are returned.
        """
        self.detectors.reset(signals)
        self.smoothed[signals] = 0.0
        return self.alarms.reset(signals, now_ns)
