"""Columnar batches of readings: the only shape data takes between collector and sink.

A batch holds four aligned arrays: ``ts`` (int64, UTC nanoseconds since the epoch), ``signal``
(int32, an index the producer defines), ``value`` (float64, engineering units) and ``quality``
(uint8, 0 = good). No Python object is made per reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

QUALITY_GOOD = 0
#: The device answered with an error (Modbus exception, OPC UA bad status code).
QUALITY_BAD_DEVICE = 1
#: The reply decoded to something that is not a number (NaN, infinity, wrong type).
QUALITY_BAD_DECODE = 2
#: The device could not be reached at this time (value NaN): an outage mark, made by the agent.
QUALITY_UNREACHABLE = 3
#: A value the agent computed (a score, a KPI) came out NaN or infinite: kept, flagged, never
#: handed to an encoder as a number.
QUALITY_NOT_FINITE = 4


@dataclass(frozen=True, slots=True)
class Batch:
    """Aligned arrays of readings; see the module docstring for units."""

    ts: NDArray[np.int64]
    signal: NDArray[np.int32]
    value: NDArray[np.float64]
    quality: NDArray[np.uint8]

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @classmethod
    def empty(cls) -> Batch:
        return cls(
            np.empty(0, np.int64),
            np.empty(0, np.int32),
            np.empty(0, np.float64),
            np.empty(0, np.uint8),
        )

    @classmethod
    def of(
        cls,
        ts: NDArray[np.int64] | Sequence[int] | int,
        signal: NDArray[np.int32] | Sequence[int],
        value: NDArray[np.float64] | Sequence[float],
        quality: NDArray[np.uint8] | Sequence[int] | None = None,
    ) -> Batch:
        """Build a batch; a scalar ``ts`` is broadcast to every reading."""
        sig = np.ascontiguousarray(signal, dtype=np.int32)
        n = sig.shape[0]
        ts_arr = np.ascontiguousarray(np.broadcast_to(np.asarray(ts, dtype=np.int64), (n,)))
        val = np.ascontiguousarray(value, dtype=np.float64)
        q = np.zeros(n, np.uint8) if quality is None else np.ascontiguousarray(quality, np.uint8)
        if not (val.shape[0] == q.shape[0] == n):
            raise ValueError("Batch arrays must have the same length")
        return cls(ts_arr, sig, val, q)

    @classmethod
    def concat(cls, batches: Sequence[Batch]) -> Batch:
        parts = [b for b in batches if len(b)]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        return cls(
            np.concatenate([b.ts for b in parts]),
            np.concatenate([b.signal for b in parts]),
            np.concatenate([b.value for b in parts]),
            np.concatenate([b.quality for b in parts]),
        )

    def remap(self, table: NDArray[np.int32]) -> Batch:
        """Replace each signal index ``i`` by ``table[i]`` (collector index to series id)."""
        return Batch(self.ts, table[self.signal], self.value, self.quality)

    def flag_not_finite(self, code: int = QUALITY_BAD_DECODE) -> Batch:
        """This batch with every good point whose value is NaN or infinite flagged ``code``.

        >>> b = Batch.of(0, [0, 1, 2], [1.0, float("inf"), float("nan")]).flag_not_finite()
        >>> b.quality.tolist()
        [0, 2, 2]
        """
        bad = ~np.isfinite(self.value)
        bad &= self.quality == QUALITY_GOOD
        if not bad.any():
            return self
        quality = self.quality.copy()
        quality[bad] = code
        return Batch(self.ts, self.signal, self.value, quality)

    def take(self, mask_or_index: NDArray[np.bool_] | NDArray[np.intp] | slice) -> Batch:
        """The readings a boolean mask, an index array or a slice picks."""
        return Batch(
            self.ts[mask_or_index],
            self.signal[mask_or_index],
            self.value[mask_or_index],
            self.quality[mask_or_index],
        )
