"""Deviation: a forecast error that persists (two-sided CUSUM of the forecast residual).

Score (higher is more anomalous): ``max(S+, S-)`` with ``S+ = max(0, S+ + r - k)`` and
``S- = max(0, S- - r - k)``, where ``r`` is the signed residual of the best short-term or seasonal
predictor in units of its scale (clipped to +-4; :mod:`analytics.detectors.forecast`).
``threshold`` is the decision interval ``h``; a sum that reaches it starts again from 0, so an
alarm does not latch. Catches a process that stops behaving as its own recent dynamics (and the
time of day) predict: a changed response, a new pattern.

Examples
--------
>>> import numpy as np
>>> from edge_agent.analytics.detectors import DetectorSet, DetectorSettings
>>> rng = np.random.default_rng(5)
>>> x = rng.normal(0, 1, (3000, 2))
>>> x[2000:2300, 1] += 3.0
>>> scores, _ = DetectorSet(2, DetectorSettings(("deviation",))).update(x)
>>> bool(np.nanmax(scores[400:2000]) < 1.0), bool(np.nanmax(scores[2000:2100, 1]) >= 1.0)
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from edge_agent.analytics.detectors.base import ChunkDetector, Param, RowDetector, per_signal, register
from edge_agent.analytics.detectors.forecast import ChunkView
from edge_agent.analytics.detectors.sums import FA, one_sided


class ResidualSum(ChunkDetector):
    """A two-sided CUSUM of one residual of the forecast view (``residual``: a :class:`ChunkView`
    field), with the allowance ``k`` and the decision interval ``threshold`` its ``params`` declare."""

    residual: ClassVar[str] = ""
    sums: ClassVar[bool] = True
    _state: ClassVar[dict[str, float]] = {"up": 0.0, "down": 0.0}
    up: NDArray[np.float64]
    down: NDArray[np.float64]

    def __init__(
        self,
        n_signals: int,
        deps: Mapping[str, RowDetector] | None = None,
        k: float | None = None,
        threshold: float | None = None,
    ) -> None:
        super().__init__(n_signals, deps)
        self.k: float = float(self.params["k"].default or 0.0) if k is None else k
        self.threshold = float(self.params["threshold"].default or 1.0) if threshold is None else threshold
        self._h = per_signal(self.threshold, n_signals)

    def score(self, view: ChunkView, out: NDArray[np.float64]) -> None:
        self.up, self.down = two_sided(self.up, self.down, getattr(view, self.residual), self.k, self._h, out)
        if view.valid is not None:
            out[~view.valid] = np.nan


@register
class Deviation(ResidualSum):
    name: ClassVar[str] = "deviation"
    residual: ClassVar[str] = "dev"
    params: ClassVar[dict[str, Param]] = {
        "k": Param(0.5, "allowance per sample, in scales", ge=0),
        "threshold": Param(16.0, "decision interval h, in scales", gt=0),
    }


def two_sided(
    up: NDArray[np.float64],
    down: NDArray[np.float64],
    r: FA,
    k: float | NDArray[np.float64],
    h: FA,
    out: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Both sums of ``r`` (allowance ``k``, interval ``h``); their maximum goes to ``out``."""
    below = np.empty_like(out)
    up = one_sided(up, r - k, h, out)
    down = one_sided(down, -r - k, h, below)
    np.maximum(out, below, out=out)
    return up, down
