"""Stuck sensor: how long a signal has not changed by more than ``tolerance``.

Score (higher is more anomalous): the number of consecutive valid samples whose change from the
previous valid sample is at most ``tolerance`` (engineering units), divided by ``samples``,
the run length that counts as stuck; ``threshold`` is 1. A gap neither extends nor breaks the run.

Examples
--------
>>> import numpy as np
>>> block = np.random.default_rng(1).normal(0, 1, size=(200, 1))
>>> block[100:180, 0] = block[99, 0]          # frozen for 80 samples
>>> scores = Stuck(1, samples=60).update(block)
>>> int(np.argmax(scores[:, 0] >= 1.0)), bool(scores[:100].max() < 0.1)
(159, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from analytics.detectors.base import Mask, Param, Row, RowDetector, keep
from analytics.detectors.spike import Spike


class Stuck(RowDetector):
    name: ClassVar[str] = "stuck"
    params: ClassVar[dict[str, Param]] = {
        "samples": Param(60, "run of unchanged samples that counts as stuck", integer=True, ge=2),
        "tolerance": Param(0.0, "largest change (engineering units) that counts as unchanged", ge=0),
    }
    threshold = 1.0
    _state: ClassVar[dict[str, float]] = {"prev": np.nan, "run": 0.0}

    def __init__(
        self,
        n_signals: int,
        deps: Mapping[str, RowDetector] | None = None,
        samples: int = 60,
        tolerance: float = 0.0,
    ) -> None:
        super().__init__(n_signals)
        steps_from = (deps or {}).get("spike")
        assert steps_from is None or isinstance(steps_from, Spike)
        #: A spike detector stepped before us on the same row: its ``|x - p|`` is ours too.
        self.steps_from = steps_from
        if np.any(np.asarray(samples) < 2):
            raise ValueError("samples must be at least 2")
        if np.any(np.asarray(tolerance) < 0):
            raise ValueError("tolerance is a change in engineering units: it must be 0 or more")
        self.samples, self.tolerance = samples, tolerance
        self._t = np.empty(n_signals)

    def grow(self, n_signals: int) -> None:
        super().grow(n_signals)
        self._t = np.empty(n_signals)

    def step(self, x: Row, valid: Mask | None, out: Row) -> None:
        prev, run, t = self.prev, self.run, self._t  # type: ignore[attr-defined]
        if self.steps_from is not None:
            t = self.steps_from._d
        else:
            np.subtract(x, prev, out=t)
            np.abs(t, out=t)
            keep(valid, x, prev)
        same = t <= self.tolerance  # False where x or prev is NaN
        if valid is None:
            run += 1.0
            run *= same
        else:
            np.copyto(run, np.where(same, run + 1.0, 0.0), where=valid)
        np.multiply(run, 1.0 / self.samples, out=out)
        if valid is not None:
            out[~valid] = np.nan
