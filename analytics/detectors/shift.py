"""Shift: a departure from the signal's long-term normal that persists (level shifts, drifts).

Score (higher is more anomalous): a two-sided CUSUM, as in :mod:`analytics.detectors.deviation`,
of the residual against the *long-term* expectation (the signal's cycle, else its day profile,
else its slow mean; :mod:`analytics.detectors.forecast`), in units of that residual's scale
inflated for its autocorrelation (an autocorrelated signal wanders further by itself). A short-term
forecast follows a shifted or drifting signal within a few samples; this sum does not, so it
catches a level that has moved and a slow drift, also on cyclic signals. A sum that reaches the
decision interval ``threshold`` starts again from 0.

Examples
--------
>>> import numpy as np
>>> from edge_agent.analytics.detectors import DetectorSet, DetectorSettings
>>> rng = np.random.default_rng(8)
>>> t = np.arange(4000)[:, None]
>>> x = 5 * np.sin(2 * np.pi * t / 600) + rng.normal(0, 1, (4000, 2))
>>> x[3000:3300, 1] += 3.0                      # a shift of 3 noise units under a cycle of 5
>>> scores, _ = DetectorSet(2, DetectorSettings(("shift",))).update(x)
>>> bool(np.nanmax(scores[2000:3000]) < 1.0), bool(np.nanmax(scores[3000:3300, 1]) >= 1.0)
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from edge_agent.analytics.detectors.base import ChunkDetector, Param, RowDetector, per_signal, register
from edge_agent.analytics.detectors.deviation import two_sided
from edge_agent.analytics.detectors.forecast import ChunkView


@register
class Shift(ChunkDetector):
    name: ClassVar[str] = "shift"
    params: ClassVar[dict[str, Param]] = {
        "k": Param(0.5, "allowance per sample, in inflated scales", ge=0),
        "threshold": Param(20.0, "decision interval h, in inflated scales", gt=0),
    }
    sums: ClassVar[bool] = True
    _state: ClassVar[dict[str, float]] = {"up": 0.0, "down": 0.0}
    up: NDArray[np.float64]
    down: NDArray[np.float64]

    def __init__(
        self, n_signals: int, deps: Mapping[str, RowDetector] | None = None, k: float = 0.5, threshold: float = 20.0
    ) -> None:
        super().__init__(n_signals, deps)
        self.k, self.threshold = k, threshold
        self._h = per_signal(threshold, n_signals)

    def score(self, view: ChunkView, out: NDArray[np.float64]) -> None:
        self.up, self.down = two_sided(self.up, self.down, view.long, self.k, self._h, out)
        if view.valid is not None:
            out[~view.valid] = np.nan
