"""A ring of chunk means kept in 16-bit codes: the cycle learner's memory at a quarter of float64's size.

Each signal's values are stored as ``centre + code * step`` with an integer ``code`` of 16 bits
(-32,768 marks a missing value). ``centre`` and ``step`` are the signal's own (float64): its first
value is the centre, with a step finer than any float32 would keep, and a value that does not fit
widens the signal's range to twice what the ring holds of it, every stored value coded again. A
value is then kept to within ``step / 2``: 1/65,000 of twice the span of what the signal did in the
ring, however large its level (a pressure of 100,000 Pa that moves by 5 Pa within 2e-4 Pa). Beside
each value the ring keeps a second one, coded alike: the cycle learner's base level at that chunk
(a mean of the signal's own values, so always within their span). At 50,000 signals and 256
chunks the ring is 51 MB (values and bases) instead of 102 MB in float32.

>>> import numpy as np
>>> r = Ring(4, 2)
>>> r.put(0, np.array([20.0, np.nan])).tolist()    # no signal widened
[]
>>> r.put(1, np.array([80.0, 1e-6])).tolist()      # widens signal 0; signal 1 starts at 1e-6
[0]
>>> bool(np.allclose(r.rows(np.array([0, 1]), np.array([0, 1])), [[20.0, np.nan], [80.0, 1e-6]],
...      rtol=1e-4, equal_nan=True))
True
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]

#: The code of a missing value.
MISSING = -32768
#: The largest code of a value.
LIMIT = 32767
#: A new signal's first step, relative to its first value (the next different value widens it).
FIRST_STEP = 2.0**-40
#: The smallest step: a signal that starts at exactly 0.
TINY = 1e-300


class Ring:
    """``size`` slots of ``n_signals`` values, and beside each value a second one of the same
    signal (its cycle's base level), coded alike; owned by its cycle learner."""

    def __init__(self, size: int, n_signals: int) -> None:
        self.codes = np.full((size, n_signals), MISSING, np.int16)
        #: The second value of each slot (a mean of the signal's own values, so within their span).
        self.bases = np.full((size, n_signals), MISSING, np.int16)
        #: Slots written so far (the others hold nothing yet).
        self.filled = 0
        self.centre = np.full(n_signals, np.nan)
        self.step = np.full(n_signals, np.nan)

    def put(self, slot: int, values: F64) -> NDArray[np.intp]:
        """Store ``values`` (one per signal, NaN = missing) in ``slot`` (its bases: missing); the
        signals whose range was widened to hold them (every stored value coded again)."""
        valid = np.isfinite(values)
        new = valid & np.isnan(self.centre)
        if new.any():
            self.centre[new] = values[new]
            self.step[new] = np.maximum(np.abs(values[new]) * FIRST_STEP, TINY)
        with np.errstate(invalid="ignore"):
            q = (values - self.centre) / self.step
            over = valid & (np.abs(q) > LIMIT)
        cols = np.flatnonzero(over)
        if cols.shape[0]:
            self._widen(cols, values[cols])
            q[cols] = (values[cols] - self.centre[cols]) / self.step[cols]
        self.codes[slot] = np.where(valid, np.rint(q), MISSING).astype(np.int16)
        self.bases[slot] = MISSING
        self.filled = max(self.filled, slot + 1)
        return cols

    def put_bases(self, slots: int | NDArray[np.intp], cols: NDArray[np.intp], codes: F64) -> None:
        """Store the bases ``codes[i, j]`` of slot ``slots[i]``, signal ``cols[j]`` (or ``codes[j]``
        of the one slot ``slots``; NaN = missing), given in the signal's codes: a mean of stored
        codes, which decodes to the mean of the stored values, so it fits (clipped to be sure)."""
        q = np.clip(np.rint(codes), -LIMIT, LIMIT)
        coded = np.where(np.isfinite(q), q, MISSING).astype(np.int16)
        if isinstance(slots, int):
            self.bases[slots, cols] = coded
        else:
            self.bases[np.ix_(slots, cols)] = coded

    def bases_at(self, slots: NDArray[np.int64], cols: NDArray[np.intp]) -> F64:
        """The base of slot ``slots[i, j]`` of signal ``cols[j]`` (as :meth:`at`)."""
        return self._decode(self.bases[slots, cols], cols)

    #: Signals widened at once: bounds the float64 copy of their ring (2 MB at 256 slots).
    BLOCK = 1024

    def _widen(self, cols: NDArray[np.intp], values: F64) -> None:
        """Centre ``cols`` on the span of their stored values and ``values``, with room for twice it."""
        for start in range(0, cols.shape[0], self.BLOCK):
            part = slice(start, start + self.BLOCK)
            self._widen_block(cols[part], values[part])

    def _widen_block(self, cols: NDArray[np.intp], values: F64) -> None:
        filled = self.filled
        old = self._decode(self.codes[:filled, cols], cols)
        bases = self._decode(self.bases[:filled, cols], cols)
        every = np.vstack([old, values[None]])
        low, high = np.nanmin(every, axis=0), np.nanmax(every, axis=0)
        self.centre[cols] = 0.5 * (low + high)
        self.step[cols] = np.maximum((high - low) / LIMIT, TINY)  # half the codes cover the span
        for codes, was in ((self.codes, old), (self.bases, bases)):
            with np.errstate(invalid="ignore"):
                q = (was - self.centre[cols]) / self.step[cols]
            codes[:filled, cols] = np.where(np.isnan(was), MISSING, np.rint(q)).astype(np.int16)

    def _decode(self, codes: NDArray[np.int16], cols: NDArray[np.intp]) -> F64:
        values: F64 = np.where(codes == MISSING, np.nan, self.centre[cols] + codes * self.step[cols])
        return values

    def rows(self, slots: NDArray[np.intp], cols: NDArray[np.intp]) -> F64:
        """The values of ``slots`` x ``cols`` (``[len(slots), len(cols)]``, NaN = missing)."""
        return self._decode(self.codes[np.ix_(slots, cols)], cols)

    def at(self, slots: NDArray[np.int64], cols: NDArray[np.intp]) -> F64:
        """The value of slot ``slots[i, j]`` of signal ``cols[j]`` (``slots``: ``[k, len(cols)]``)."""
        return self._decode(self.codes[slots, cols], cols)

    def clear(self, cols: NDArray[np.intp]) -> None:
        """Forget ``cols`` (a reset signal starts again from its next value)."""
        self.codes[:, cols] = self.bases[:, cols] = MISSING
        self.centre[cols] = np.nan
        self.step[cols] = np.nan
