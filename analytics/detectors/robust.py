"""Robust level: distance from a median, in MADs, with the median recomputed on a schedule.

Score (higher is more anomalous): ``|x - med| / (1.4826 * MAD)`` where ``med`` and ``MAD`` (median
absolute deviation) are taken over the last ``window`` samples, recomputed every ``every``
samples rather than per sample (a median per sample would cost far more than the rest of the
detectors together). Outliers barely move a median, so this catches level changes that an EWMA
would learn away. Scores 0 until a first window is full. Not in the default set: it pays off on
heavy-tailed signals, and a stale median misreads fast periodic baselines.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(2)
>>> block = rng.normal(10.0, 1.0, size=(400, 2))
>>> block[300:, 0] += 12.0
>>> scores = RobustLevel(2, window=64, every=32).update(block)
>>> bool(scores[300:320, 0].min() > 6), bool(scores[64:300].max() < 6)
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from edge_agent.analytics.detectors.base import Mask, Param, Row, RowDetector, register

_MAD_TO_SIGMA = 1.4826


@register
class RobustLevel(RowDetector):
    name: ClassVar[str] = "robust"
    _state: ClassVar[dict[str, float]] = {"median": np.nan, "inv_scale": 0.0}

    params: ClassVar[dict[str, Param]] = {
        "window": Param(128, "samples the median and MAD are taken over", integer=True, ge=8, per_signal=False),
        "every": Param(128, "samples between recomputations", integer=True, ge=1, per_signal=False),
        "threshold": Param(8.0, "robust z-score that is anomalous", gt=0),
    }

    def __init__(
        self,
        n_signals: int,
        deps: Mapping[str, RowDetector] | None = None,
        window: int = 128,
        every: int = 128,
        threshold: float = 8.0,
    ) -> None:
        super().__init__(n_signals)
        self.window, self.every, self.threshold = window, every, threshold
        self.ring = np.full((window, n_signals), np.nan)
        self.seen = 0  # samples taken so far (rows), for the schedule

    def grow(self, n_signals: int) -> None:
        extra = n_signals - self.n_signals
        super().grow(n_signals)
        if extra > 0:
            self.ring = np.concatenate([self.ring, np.full((self.window, extra), np.nan)], axis=1)

    def reset(self, signals: np.ndarray) -> None:
        super().reset(signals)
        self.ring[:, signals] = np.nan

    def _recompute(self) -> None:
        ring = self.ring
        if np.isnan(ring).any():
            med = np.nanmedian(ring, axis=0) if not np.isnan(ring).all(axis=0).any() else _nanmedian_safe(ring)
            mad = _nanmedian_safe(np.abs(ring - med))
        else:
            med = np.median(ring, axis=0)
            mad = np.median(np.abs(ring - med), axis=0)
        full = (~np.isnan(ring)).sum(axis=0) >= self.window // 2
        self.median[:] = np.where(full, med, np.nan)  # type: ignore[attr-defined]
        self.inv_scale[:] = np.where(full, 1.0 / np.maximum(_MAD_TO_SIGMA * mad, 1e-9), 0.0)  # type: ignore[attr-defined]

    def step(self, x: Row, valid: Mask | None, out: Row) -> None:
        np.subtract(x, self.median, out=out)  # type: ignore[attr-defined]
        np.abs(out, out=out)
        out *= self.inv_scale  # type: ignore[attr-defined]
        out[np.isnan(self.median)] = 0.0  # type: ignore[attr-defined]
        if valid is not None:
            out[~valid] = np.nan
        self.ring[self.seen % self.window] = x
        self.seen += 1
        if self.seen % self.every == 0 or self.seen == self.window:
            self._recompute()


def _nanmedian_safe(values: np.ndarray) -> np.ndarray:
    """nanmedian per column; all-NaN columns give NaN without a warning."""
    out = np.full(values.shape[1], np.nan)
    some = ~np.isnan(values).all(axis=0)
    if some.any():
        out[some] = np.nanmedian(values[:, some], axis=0)
    return out
