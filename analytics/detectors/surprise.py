"""Surprise: how unexplained a sample is by every model of normal, against the signal's own tail.

Score (higher is more anomalous): the forecast model's surprise
(:mod:`analytics.detectors.forecast`), the smallest ``|x - prediction| / scale`` over AR(2), the
last value and the seasonal predictors, divided by the signal's 99.9th percentile of it. A
sample alarms at ``threshold`` (1.5: half again as surprising as 1 sample in 1,000). Catches
spikes, outliers and sudden jumps, also on autocorrelated, cyclic and heavy-tailed signals.

Examples
--------
>>> import numpy as np
>>> from edge_agent.analytics.detectors import DetectorSet, DetectorSettings
>>> rng = np.random.default_rng(3)
>>> x = np.cumsum(rng.normal(0, 1, (2000, 2)), axis=0) * 0.05 + rng.normal(0, 1, (2000, 2))
>>> x[1500, 0] += 12.0
>>> scores, _ = DetectorSet(2, DetectorSettings(("surprise",))).update(x)
>>> bool(scores[1500, 0] > 1.0), bool(np.nanmax(scores[400:1500]) < 1.0)
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from edge_agent.analytics.detectors.base import ChunkDetector, Param, RowDetector, register
from edge_agent.analytics.detectors.forecast import ChunkView


@register
class Surprise(ChunkDetector):
    name: ClassVar[str] = "surprise"
    params: ClassVar[dict[str, Param]] = {
        "threshold": Param(1.5, "surprise, in units of the signal's 99.9th percentile, that alarms", gt=0),
    }

    def __init__(self, n_signals: int, deps: Mapping[str, RowDetector] | None = None, threshold: float = 1.5) -> None:
        super().__init__(n_signals, deps)
        self.threshold = threshold

    def score(self, view: ChunkView, out: NDArray[np.float64]) -> None:
        np.copyto(out, view.surprise)
