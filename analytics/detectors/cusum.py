"""Shift and drift: two-sided CUSUM on the EWMA residual.

With ``z`` the signed EWMA z-score of each sample (from :class:`~analytics.detectors.level.EwmaLevel`),
``S+ = max(0, S+ + z - k)`` and ``S- = max(0, S- - z - k)``; the score is ``max(S+, S-)``
(higher is more anomalous). A level shift or a slow drift keeps ``z`` on one side of 0, and the
sums grow until the EWMA catches up; noise, centred on 0, is absorbed by the allowance ``k``.
A gap leaves the sums unchanged. ``threshold`` is the decision interval ``h``.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(5)
>>> block = rng.normal(0.0, 1.0, size=(600, 2))
>>> block[300:, 1] += np.arange(300) * 0.05    # a slow drift on signal 1
>>> level = EwmaLevel(2, alpha=0.02, grace=30)
>>> cusum = Cusum(2, level)
>>> scores = np.array([cusum.update_row(level, row) for row in block])
>>> bool(scores[:300].max() < cusum.threshold), bool(scores[300:, 1].max() > cusum.threshold)
(True, True)
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from analytics.detectors.base import Mask, Row, RowDetector
from analytics.detectors.level import EwmaLevel


class Cusum(RowDetector):
    name: ClassVar[str] = "cusum"
    _state: ClassVar[dict[str, float]] = {"up": 0.0, "down": 0.0}

    def __init__(self, n_signals: int, level: EwmaLevel | None = None, k: float = 1.0, threshold: float = 25.0) -> None:
        super().__init__(n_signals)
        #: The level detector whose residual is summed; stepped by the set (or by us when alone).
        self.level = level if level is not None else EwmaLevel(n_signals)
        self.owns_level = level is None
        self.k, self.threshold = k, threshold
        self._t = np.empty(n_signals)

    def grow(self, n_signals: int) -> None:
        super().grow(n_signals)
        if self.owns_level:
            self.level.grow(n_signals)
        self._t = np.empty(n_signals)

    def reset(self, signals: np.ndarray) -> None:
        super().reset(signals)
        if self.owns_level:
            self.level.reset(signals)

    def step(self, x: Row, valid: Mask | None, out: Row) -> None:
        if self.owns_level:
            self.level.step(x, valid, self._t)
        z, up, down = self.level.z, self.up, self.down  # type: ignore[attr-defined]
        up += z
        up -= self.k
        np.maximum(up, 0.0, out=up)
        down -= z
        down -= self.k
        np.maximum(down, 0.0, out=down)
        np.maximum(up, down, out=out)
        if valid is not None:
            # A gap: z was 0, so only the allowance was taken off; put it back.
            up[~valid] += self.k
            down[~valid] += self.k
            out[~valid] = np.nan

    def update_row(self, level: EwmaLevel, row: Row) -> Row:
        """Step ``level`` then this detector on one row (for use outside a detector set)."""
        scratch, out = np.empty_like(row), np.empty_like(row)
        valid = None if not np.isnan(row).any() else ~np.isnan(row)
        level.step(row, valid, scratch)
        self.step(row, valid, out)
        return out
