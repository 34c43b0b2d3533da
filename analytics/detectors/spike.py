"""Spike: z-score of the first difference.

Score (higher is more anomalous): ``|x - p| / (c * r)`` where ``p`` is the previous valid sample
and ``r`` the mean absolute non-zero step (EWMA with ``alpha`` after the warm-up, a plain mean
during it; repeated values, from devices that update slower than they are polled, are
skipped); ``c = sqrt(pi / 2)`` turns a mean absolute Gaussian step into its standard deviation.
``r`` learns only from steps scoring below ``threshold``, so a spike does not hide the next one.
A gap (NaN) is skipped: the step after it is taken from the last valid sample. The first
``grace`` steps of a signal score 0.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(3)
>>> block = rng.normal(5.0, 0.1, size=(200, 2))
>>> block[150, 0] += 3.0
>>> scores = Spike(2, grace=20).update(block)
>>> bool(scores[150, 0] > 15), bool(np.delete(scores[30:, 0], [120, 121]).max() < 8)
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from edge_agent.analytics.detectors.base import Mask, Param, Row, RowDetector, keep, register

_GAUSS = math.sqrt(math.pi / 2)


@register
class Spike(RowDetector):
    name: ClassVar[str] = "spike"
    params: ClassVar[dict[str, Param]] = {
        "alpha": Param(0.02, "EWMA rate of the step scale (per non-zero step)", gt=0, lt=1),
        "grace": Param(30, "warm-up, in steps: scores 0 until then", integer=True, ge=1),
        "threshold": Param(5.0, "score (step in standard deviations of steps) that is a spike", gt=0),
    }
    _state: ClassVar[dict[str, float]] = {"prev": np.nan, "scale": 1e-9, "count": 0.0}

    def __init__(
        self,
        n_signals: int,
        deps: Mapping[str, RowDetector] | None = None,
        alpha: float = 0.02,
        grace: int = 30,
        threshold: float = 5.0,
    ) -> None:
        super().__init__(n_signals)
        self.alpha, self.grace, self.threshold = alpha, grace, threshold
        self._alloc(n_signals)
        self._warm = False
        self._rows = 0
        self.scale[:] = 1e-9  # type: ignore[attr-defined]

    def _alloc(self, n_signals: int) -> None:
        self._d, self._t = np.empty(n_signals), np.empty(n_signals)
        self._learn, self._moved = np.empty(n_signals, bool), np.empty(n_signals, bool)

    def grow(self, n_signals: int) -> None:
        super().grow(n_signals)
        self._alloc(n_signals)
        self._warm = False

    def reset(self, signals: np.ndarray) -> None:
        super().reset(signals)
        self._warm = False

    def step(self, x: Row, valid: Mask | None, out: Row) -> None:
        prev, scale, count = self.prev, self.scale, self.count  # type: ignore[attr-defined]
        d, t = self._d, self._t
        np.subtract(x, prev, out=d)
        np.abs(d, out=d)
        np.multiply(scale, _GAUSS, out=t)  # scale is kept >= 1e-9, so t > 0
        np.divide(d, t, out=out)
        if self._warm and valid is None:
            # Fast path: every signal warmed up, no gap in this row; no temporary arrays.
            learn, moved = self._learn, self._moved
            np.subtract(d, scale, out=t)
            np.less(out, self.threshold, out=learn)
            np.greater(d, 0.0, out=moved)
            learn &= moved
            t *= learn
            t *= self.alpha
            scale += t
            np.copyto(prev, x)
            self._rows += 1
            if self._rows % 64 == 0:
                np.maximum(scale, 1e-9, out=scale)
            return
        seen = np.isfinite(d) & (d > 0.0)
        warming = count < self.grace
        rate = np.where(warming, 1.0 / (count + 1.0), self.alpha * (out < self.threshold))
        scale += np.where(seen, rate * (np.where(seen, d, 0.0) - scale), 0.0)
        out[warming | ~seen] = 0.0
        if valid is not None:
            out[~valid] = np.nan
        count += seen
        keep(valid, x, prev)
        np.maximum(scale, 1e-9, out=scale)
        self._warm = bool((count >= self.grace).all())
