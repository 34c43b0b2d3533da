"""Stuck sensor: a signal that normally moves has stopped moving, for longer than it ever does.

Score (higher is more anomalous): the run of consecutive samples that changed by at most
``tolerance`` (engineering units), divided by ``max(samples, 4 x the longest run seen while the
signal was normal)``; ``threshold`` is 1. A device polled faster than it updates repeats each value
a few times: those runs are learnt as normal (the runs of a signal's first 300 changes, and later
every run that ended below the limit). A signal that has changed fewer than 100 times is a
constant or a setpoint, not a stuck sensor: it scores 0. A gap neither extends nor breaks a run.

Examples
--------
>>> import numpy as np
>>> from edge_agent.analytics.detectors import DetectorSet, DetectorSettings
>>> x = np.repeat(np.random.default_rng(1).normal(0, 1, (600, 1)), 5, axis=0)  # each value 5 times
>>> x[2000:2200, 0] = x[1999, 0]                    # frozen for 200 samples
>>> scores, _ = DetectorSet(1, DetectorSettings(("stuck",))).update(x)
>>> int(np.argmax(scores[:, 0] >= 1.0)), bool(scores[:2000].max() < 0.5)
(2055, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from edge_agent.analytics.detectors.base import ChunkDetector, Param, RowDetector, per_signal, register
from edge_agent.analytics.detectors.forecast import ChunkView

#: Changes a signal must have made before a run can be stuck, and during which runs are learnt.
ARMED_AFTER, LEARN_FOR = 100, 300


@register
class Stuck(ChunkDetector):
    name: ClassVar[str] = "stuck"
    threshold = 1.0
    params: ClassVar[dict[str, Param]] = {
        "samples": Param(60, "shortest run of unchanged samples that counts as stuck", integer=True, ge=2),
        "tolerance": Param(0.0, "largest change (engineering units) that counts as unchanged", ge=0),
    }
    _state: ClassVar[dict[str, float]] = {"run": 0.0, "longest": 0.0, "changes": 0.0, "prev": np.nan}
    run: NDArray[np.float64]
    longest: NDArray[np.float64]
    changes: NDArray[np.float64]
    prev: NDArray[np.float64]

    def __init__(
        self, n_signals: int, deps: Mapping[str, RowDetector] | None = None, samples: int = 60, tolerance: float = 0.0
    ) -> None:
        super().__init__(n_signals, deps)
        self.samples, self.tolerance = samples, tolerance
        self._samples = per_signal(samples, n_signals)
        self._tolerance = per_signal(tolerance, n_signals)

    def score(self, view: ChunkView, out: NDArray[np.float64]) -> None:
        x, valid = view.x, view.valid
        run, prev = self.run, self.prev
        limit = np.maximum(self._samples, 4.0 * self.longest)
        scale = (self.changes >= ARMED_AFTER) / limit
        ended = np.zeros_like(run)  # the longest run that ended in this chunk
        changes = np.zeros_like(run)
        exact = not np.any(self._tolerance)
        if valid is None and exact and not (self.run > 0).any():
            # An analog signal changes at every sample: no run at all is the common case.
            repeats = np.empty(x.shape, bool)
            np.equal(x[0], prev, out=repeats[0])
            np.equal(x[1:], x[:-1], out=repeats[1:])
            if not repeats.any():
                out.fill(0.0)
                self.changes += x.shape[0]
                self.prev = x[-1].copy()
                return
        with np.errstate(invalid="ignore"):
            for i in range(x.shape[0]):
                xi = x[i]
                same = (xi == prev) if exact else (np.abs(xi - prev) <= self._tolerance)
                here = None if valid is None else valid[i]
                change = ~same if here is None else here & ~same
                np.maximum(ended, run * change, out=ended)
                changes += change
                grown = (run + 1.0) * same
                run = grown if here is None else np.where(here, grown, run)
                prev = xi if here is None else np.where(here, xi, prev)
                np.multiply(run, scale, out=out[i])
        if valid is not None:
            out[~valid] = np.nan
        # Runs that ended in this chunk teach what a normal run is.
        if changes.any():
            learning = self.changes < LEARN_FOR
            normal = np.where(learning | (ended < limit), ended, 0.0)
            np.maximum(self.longest, normal, out=self.longest)
        self.changes += changes
        self.run, self.prev = run.copy(), np.array(prev, copy=True)
