"""Readings no model may learn from: what a broken sensor or a misread register sends.

A reading is *implausible* when

* it is not finite (NaN handed in as a value, an infinity), or
* its magnitude reaches ``LIMIT`` (1e30): float32's largest and lowest values (±3.4e38), which
  many devices send for a broken sensor, ``1e308``, a register pair read in the wrong word order.
  No instrument reads such a number in any unit; or
* it lies further than ``SPAN`` (1e15, in the signal's unit) from the level the model has learnt
  for the signal: the model computes in float32, whose squares overflow past about 1e19.

An implausible reading scores ``CAP`` (the highest combined score there is), so it raises an alarm
tagged ``implausible``, and teaches the model nothing: the model sees a gap, and the readings
after it are scored as if it had not come. A signal whose readings stay further than ``SPAN``
from its level for ``RELEARN`` readings in a row (a sensor replaced by one with another range)
starts its model afresh, so a new normal is learnt instead of alarmed on for ever.

>>> import numpy as np
>>> gate = Plausibility(2)
>>> x = np.array([[20.0, 3.4028235e38], [21.0, np.inf]])
>>> bad, far = gate.check(x, level=np.zeros(2), known=np.zeros(2, bool))
>>> bad.tolist(), bool(far.any())
([[False, True], [False, True]], False)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

#: Readings of this magnitude or more are implausible (in any unit).
LIMIT = 1e30
#: Readings further than this from the signal's learnt level are implausible (signal's unit).
SPAN = 1e15
#: The combined score of an implausible reading (scores are ``score / threshold``: 1 is an alarm).
CAP = 1e3
#: Readings in a row beyond ``SPAN`` after which a signal's model starts afresh.
RELEARN = 50
#: The alarm tag of an implausible reading.
IMPLAUSIBLE = "implausible"


class Plausibility:
    """Finds implausible readings in a block and counts how long each signal has sent them."""

    def __init__(self, n_signals: int) -> None:
        #: Readings in a row each signal sent beyond ``SPAN`` from its level.
        self.run = np.zeros(n_signals, np.int64)

    def check(
        self, block: NDArray[np.float64], level: NDArray[np.float64] | None, known: NDArray[np.bool_] | None
    ) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        """Where ``block`` (``[rows, signals]``, NaN = gap) holds implausible readings, and which of
        them are only far from their signal's level (not beyond ``LIMIT``).

        ``level`` is each signal's learnt level, meaningful where ``known``; None when the model
        has no level (a set of per-row detectors).
        """
        with np.errstate(invalid="ignore", over="ignore"):
            broken = np.abs(block) >= LIMIT
            if level is not None and known is not None and known.any():
                far = (np.abs(block - level) > SPAN) & known & ~broken
            else:
                far = np.zeros(block.shape, bool)
        return broken | far, far

    def stale(self, far: NDArray[np.bool_], valid: NDArray[np.bool_]) -> NDArray[np.intp]:
        """Signals whose readings have been far from their level ``RELEARN`` times in a row.

        ``far``: readings beyond ``SPAN`` (not those beyond ``LIMIT``: a broken sensor is not a new
        normal); ``valid``: readings at all. A reading within reach ends a signal's run.
        """
        for r in range(far.shape[0]):
            row_far, row_valid = far[r], valid[r]
            self.run[row_far] += 1
            self.run[row_valid & ~row_far] = 0
        signals = np.flatnonzero(self.run >= RELEARN)
        self.run[signals] = 0
        return signals

    def reset(self, signals: NDArray[np.intp]) -> None:
        self.run[signals] = 0


__all__ = ["CAP", "IMPLAUSIBLE", "LIMIT", "RELEARN", "SPAN", "Plausibility"]
