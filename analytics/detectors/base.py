"""The detector contract, shared by every detector module.

A detector scores a time-major block ``[samples, signals]`` (float64, NaN = no sample) and
returns scores of the same shape: higher is more anomalous, NaN where the sample was NaN. Its
``threshold`` is the score at which it calls a sample anomalous on its own, so ``score /
threshold`` compares detectors. State is a few arrays per signal, listed in ``_state`` with
their initial values; ``reset(signals)`` and ``grow(n)`` work from that list. Detectors step
one row at a time, vectorised over signals: a row (tens of kB) stays in cache, which makes a
loop over rows faster in numpy than any vectorisation along time.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

Row = NDArray[np.float64]
Mask = NDArray[np.bool_]


def per_signal(value: object, n: int, dtype: type[np.floating] = np.float64) -> NDArray[np.floating]:
    """A parameter given as a scalar or one value per signal, as an array of ``n`` values."""
    return np.broadcast_to(np.asarray(value, dtype), (n,)).copy()


class RowDetector:
    """Base class: subclasses set ``name``, ``threshold``, ``_state`` and implement ``step``."""

    name: ClassVar[str] = ""
    threshold: float = 1.0
    #: State arrays: attribute name -> initial value.
    _state: ClassVar[dict[str, float]] = {}

    def __init__(self, n_signals: int) -> None:
        self.n_signals = n_signals
        for attr, initial in self._state.items():
            setattr(self, attr, np.full(n_signals, initial))

    def step(self, x: Row, valid: Mask | None, out: Row) -> None:
        """Score one row ``x`` into ``out`` and update state; ``valid`` is None when no NaN."""
        raise NotImplementedError

    def update(self, block: NDArray[np.float64]) -> NDArray[np.float64]:
        """Scores for every sample of ``block`` (NaN where the sample is NaN)."""
        block = np.asarray(block, dtype=np.float64)
        if block.ndim != 2 or block.shape[1] != self.n_signals:
            raise ValueError(f"{self.name}: expected a [samples, {self.n_signals}] block, got {block.shape}")
        scores = np.empty_like(block)
        gaps: NDArray[np.bool_] = np.asarray(np.isnan(block).any(axis=1))
        for i in range(block.shape[0]):
            valid = ~np.isnan(block[i]) if gaps[i] else None
            self.step(block[i], valid, scores[i])
        return scores

    def reset(self, signals: NDArray[np.intp]) -> None:
        """Forget what was learnt about ``signals`` (they warm up again)."""
        for attr, initial in self._state.items():
            getattr(self, attr)[signals] = initial

    def grow(self, n_signals: int) -> None:
        """Make room for more signals; new ones start fresh."""
        extra = n_signals - self.n_signals
        if extra > 0:
            for attr, initial in self._state.items():
                setattr(self, attr, np.concatenate([getattr(self, attr), np.full(extra, initial)]))
            self.n_signals = n_signals


def keep(valid: Mask | None, new: Row, old: Row) -> None:
    """``old[:] = new`` where the sample was valid (all of it when ``valid`` is None)."""
    if valid is None:
        old[:] = new
    else:
        np.copyto(old, new, where=valid)
