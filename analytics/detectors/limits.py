"""Out of range: a sample outside the engineering limits of its signal (from the device profile).

Score (higher is more anomalous): 0 inside ``[low, high]``; outside, ``1 + excess / span`` where
``excess`` is the distance beyond the nearer limit and ``span = high - low`` (or the limit's
magnitude when only one is given), so any excursion reaches the threshold 1. Signals without
limits (NaN) score 0. No state.

Examples
--------
>>> import numpy as np
>>> det = OutOfRange(2, low=np.array([0.0, np.nan]), high=np.array([100.0, np.nan]))
>>> det.update(np.array([[50.0, 1e9], [-10.0, -1e9], [150.0, 0.0]])).tolist()
[[0.0, 0.0], [1.1, 0.0], [1.5, 0.0]]
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from edge_agent.analytics.detectors.base import Mask, Row, RowDetector, register


@register
class OutOfRange(RowDetector):
    name: ClassVar[str] = "range"
    uses_limits: ClassVar[bool] = True
    threshold = 1.0

    def __init__(
        self, n_signals: int, low: NDArray[np.float64] | None = None, high: NDArray[np.float64] | None = None
    ) -> None:
        super().__init__(n_signals)
        self.low = np.full(n_signals, np.nan) if low is None else np.asarray(low, np.float64).copy()
        self.high = np.full(n_signals, np.nan) if high is None else np.asarray(high, np.float64).copy()
        self._refresh()

    def _refresh(self) -> None:
        span = self.high - self.low
        span = np.where(
            np.isfinite(span) & (span > 0),
            span,
            np.maximum(np.abs(np.nan_to_num(self.low)), np.abs(np.nan_to_num(self.high))),
        )
        self._inv_span = 1.0 / np.maximum(span, 1e-9)
        self._low = np.where(np.isnan(self.low), -np.inf, self.low)
        self._high = np.where(np.isnan(self.high), np.inf, self.high)
        self.active = bool(np.isfinite(self._low).any() or np.isfinite(self._high).any())

    def grow(self, n_signals: int) -> None:
        extra = n_signals - self.n_signals
        if extra > 0:
            self.low = np.concatenate([self.low, np.full(extra, np.nan)])
            self.high = np.concatenate([self.high, np.full(extra, np.nan)])
            self.n_signals = n_signals
            self._refresh()

    def step(self, x: Row, valid: Mask | None, out: Row) -> None:
        excess = np.maximum(x - self._high, self._low - x)
        np.multiply(excess, self._inv_span, out=out)
        out += 1.0
        out[excess <= 0] = 0.0
        if valid is not None:
            out[~valid] = np.nan
