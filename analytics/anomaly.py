"""EWMA z-score: how far a sample lies from the signal's exponentially weighted mean.

Score contract: higher is more anomalous; the score is ``|x - mean| / sqrt(var)`` using the
mean and variance *before* the sample is absorbed, so a sudden outlier scores fully.
``mean += alpha * (x - mean)``; ``var = (1 - alpha) * (var + alpha * (x - mean_old)^2)``.
The first ``grace`` samples of a signal score 0 (warm-up). NaN samples are gaps: they neither
score (NaN out) nor change state. State is three arrays per signal.

>>> import numpy as np
>>> rng = np.random.default_rng(7)
>>> block = rng.normal(20.0, 0.5, size=(200, 3))
>>> block[150, 1] = 40.0                       # a spike on signal 1
>>> det = EwmaZScore(n_signals=3, alpha=0.05, grace=30)
>>> scores = det.update(block)
>>> bool(scores[150, 1] > 10), bool(scores[:30].max() == 0)
(True, True)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


class EwmaZScore:
    """Vectorised EWMA z-score over signals; ``update`` takes time-major ``[samples, signals]``."""

    def __init__(self, n_signals: int, alpha: float = 0.02, grace: int = 30, min_std: float = 1e-6) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError("alpha must be in (0, 1)")
        self.n_signals, self.alpha, self.grace, self.min_std = n_signals, alpha, grace, min_std
        self.mean = np.zeros(n_signals)
        self.var = np.zeros(n_signals)
        self.count = np.zeros(n_signals, np.int64)

    def grow(self, n_signals: int) -> None:
        """Make room for more signals (new signals start fresh)."""
        extra = n_signals - self.n_signals
        if extra > 0:
            self.mean = np.concatenate([self.mean, np.zeros(extra)])
            self.var = np.concatenate([self.var, np.zeros(extra)])
            self.count = np.concatenate([self.count, np.zeros(extra, np.int64)])
            self.n_signals = n_signals

    def reset(self, signals: NDArray[np.intp]) -> None:
        self.mean[signals] = 0.0
        self.var[signals] = 0.0
        self.count[signals] = 0

    def update(self, block: NDArray[np.float64]) -> NDArray[np.float64]:
        """Scores for every sample of ``block`` (NaN where the sample is NaN)."""
        scores = np.full(block.shape, np.nan)
        alpha = self.alpha
        mean, var, count = self.mean, self.var, self.count
        for row in range(block.shape[0]):
            x = block[row]
            seen = ~np.isnan(x)
            diff = np.where(seen, x - mean, 0.0)
            std = np.sqrt(np.maximum(var, self.min_std**2))
            z = np.abs(diff) / std
            scores[row] = np.where(seen, np.where(count >= self.grace, z, 0.0), np.nan)
            first = seen & (count == 0)
            mean += np.where(first, diff, alpha * diff)
            var[:] = np.where(seen & ~first, (1.0 - alpha) * (var + alpha * diff * diff), var)
            count += seen
        return scores
