"""Level: EWMA z-score of each sample against the signal's exponentially weighted mean.

Score (higher is more anomalous): ``|x - m| / s`` with ``m`` and ``s**2`` the EWMA mean and
variance *before* the sample is absorbed, then ``m += a (x - m)`` and
``v = (1 - b) (v + b (x - m_old)**2)`` with a slower ``b`` (``var_alpha``, default ``a / 5``).
After the warm-up the residual used for the update is clipped to ``3 s`` (a winsorised EWMA): an
outlier is scored in full but moves the statistics no more than a 3-sigma sample would.
During the warm-up the variance is a running variance and the mean a running mean that keeps
a short memory (rate at least 0.1), so both are current when scoring starts.
``s`` has a floor of ``rel_floor * |m|`` (and 1e-9) so a signal that never moved does not turn
every change into an alarm. The first ``grace`` samples of a signal score 0 (warm-up).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(7)
>>> block = rng.normal(20.0, 0.5, size=(300, 3))
>>> block[250, 1] = 40.0                      # a jump on signal 1
>>> det = EwmaLevel(3, alpha=0.05, grace=30)
>>> scores = det.update(block)
>>> bool(scores[250, 1] > 10), bool((scores[:30] == 0).all()), bool(scores[100:250].max() < 5)
(True, True, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from edge_agent.analytics.detectors.base import Mask, Param, Row, RowDetector, register

_CLIP = 3.0


@register
class EwmaLevel(RowDetector):
    name: ClassVar[str] = "level"
    params: ClassVar[dict[str, Param]] = {
        "alpha": Param(0.02, "EWMA rate of the mean (per sample)", gt=0, lt=1),
        "var_alpha": Param(
            None,
            "EWMA rate of the variance (per sample); default alpha / 5",
            gt=0,
            lt=1,
            derive=lambda given: np.asarray(given.get("alpha", 0.02), np.float64) / 5,
        ),
        "grace": Param(30, "warm-up, in samples: scores 0 until then", integer=True, ge=1),
        "threshold": Param(6.0, "score (in standard deviations) at which it calls a sample anomalous", gt=0),
        "rel_floor": Param(1e-4, "floor of the standard deviation, relative to |mean|", ge=0),
    }
    _state: ClassVar[dict[str, float]] = {"mean": 0.0, "var": 0.0, "count": 0.0}
    mean: Row
    var: Row
    count: Row

    def __init__(
        self,
        n_signals: int,
        deps: Mapping[str, RowDetector] | None = None,
        alpha: float = 0.02,
        var_alpha: float | None = None,
        grace: int = 30,
        threshold: float = 6.0,
        rel_floor: float = 1e-4,
    ) -> None:
        super().__init__(n_signals)
        self.alpha, self.grace, self.threshold, self.rel_floor = alpha, grace, threshold, rel_floor
        self.var_alpha = alpha / 5 if var_alpha is None else var_alpha
        self._d, self._t, self._floor = np.empty(n_signals), np.empty(n_signals), np.zeros(n_signals)
        self._warming = True
        self._rows_since_floor = 0

    def grow(self, n_signals: int) -> None:
        super().grow(n_signals)
        self._d, self._t, self._floor = np.empty(n_signals), np.empty(n_signals), np.zeros(n_signals)
        self._warming = True

    def reset(self, signals: np.ndarray) -> None:
        super().reset(signals)
        self._warming = True

    def step(self, x: Row, valid: Mask | None, out: Row) -> None:
        d, t = self._d, self._t
        mean, var, count = self.mean, self.var, self.count
        if self._rows_since_floor >= 64 or self._warming:
            # The variance floor follows the level slowly: refreshing it every 64 rows is plenty.
            np.multiply(np.abs(mean), self.rel_floor, out=self._floor)
            self._floor *= self._floor
            self._floor += 1e-18
            self._rows_since_floor = 0
        self._rows_since_floor += 1
        np.subtract(x, mean, out=d)
        np.maximum(var, self._floor, out=t)
        np.sqrt(t, out=t)
        if not self._warming and valid is None:
            # Fast path: every signal warmed up, no gap. (``count`` only matters while warming.)
            np.abs(d, out=out)
            out /= t
            # Winsorised update: an outlier moves the mean and variance no more than a 3-sigma
            # sample would, so the samples after a spike are not judged against a shifted mean.
            t *= _CLIP
            np.minimum(d, t, out=d)
            np.negative(t, out=t)
            np.maximum(d, t, out=d)
            np.multiply(d, self.alpha, out=t)
            mean += t
            d *= d
            d *= self.var_alpha
            var += d
            var *= 1.0 - self.var_alpha
            return
        np.abs(d, out=out)
        out /= t
        # Warm-up (exact running mean and variance) or a row with gaps.
        warming = count < self.grace
        # Warm-up: running statistics while few samples were seen; after that the mean keeps a
        # short memory (rate 0.1) so it is current when scoring starts, even on a settling signal.
        rate = 1.0 / (count + 1.0)
        am = np.where(warming, np.maximum(rate, np.maximum(self.alpha, 0.1)), self.alpha)
        av = np.where(warming, np.maximum(rate, self.var_alpha), self.var_alpha)
        out[warming] = 0.0
        if valid is not None:
            out[~valid] = np.nan
            d[~valid] = 0.0
            am = np.where(valid, am, 0.0)
            av = np.where(valid, av, 0.0)
        np.clip(d, -_CLIP * t, _CLIP * t, out=d, where=~warming)
        mean += am * d
        var[:] = (1.0 - av) * (var + av * d * d)
        count += 1.0 if valid is None else valid
        self._warming = bool((count < self.grace).any())
