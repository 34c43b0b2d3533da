"""Variance: the noise grows (a worn bearing, a loose sensor): surprises come too often.

Score (higher is more anomalous): a one-sided CUSUM of ``e - 0.1 - k`` where ``e`` is 1 when a
sample's short-term residual, against the slowly learnt scale, passes its own 90th percentile
(:mod:`analytics.detectors.forecast`) and 0 otherwise: normally 10 % of samples do, and the sum
stays near 0; when the noise grows most do, and it climbs by about ``0.9 - k`` a sample. Being
built on the signal's own percentile, it needs no assumption about the shape of its noise.
``threshold`` is the decision interval; a sum that reaches it starts again from 0.

Examples
--------
>>> import numpy as np
>>> from edge_agent.analytics.detectors import DetectorSet, DetectorSettings
>>> rng = np.random.default_rng(9)
>>> x = rng.normal(0, 1, (3000, 2))
>>> x[2000:2300, 0] *= 4.0
>>> scores, _ = DetectorSet(2, DetectorSettings(("variance",))).update(x)
>>> bool(np.nanmax(scores[500:2000]) < 1.0), bool(np.nanmax(scores[2000:2100, 0]) >= 1.0)
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from edge_agent.analytics.detectors.base import ChunkDetector, Param, RowDetector, per_signal, register
from edge_agent.analytics.detectors.forecast import ChunkView
from edge_agent.analytics.detectors.sums import one_sided


@register
class Variance(ChunkDetector):
    name: ClassVar[str] = "variance"
    params: ClassVar[dict[str, Param]] = {
        "k": Param(0.15, "allowance per sample (the share of surprising samples tolerated above 10 %)", ge=0),
        "threshold": Param(10.0, "decision interval h", gt=0),
    }
    sums: ClassVar[bool] = True
    _state: ClassVar[dict[str, float]] = {"total": 0.0}
    total: NDArray[np.float64]

    def __init__(
        self, n_signals: int, deps: Mapping[str, RowDetector] | None = None, k: float = 0.15, threshold: float = 10.0
    ) -> None:
        super().__init__(n_signals, deps)
        self.k, self.threshold = k, threshold
        self._h = per_signal(threshold, n_signals)

    def score(self, view: ChunkView, out: NDArray[np.float64]) -> None:
        allowance = (0.1 + self.k) * view.calibrated
        counted = view.exceed - allowance if view.valid is None else view.exceed - allowance * view.valid
        self.total = one_sided(self.total, counted, self._h, out)
        if view.valid is not None:
            out[~view.valid] = np.nan
