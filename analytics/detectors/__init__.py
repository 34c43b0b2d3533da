"""Streaming anomaly detectors, vectorised over signals (time-major blocks ``[samples, signals]``).

Each module holds one detector and states its score formula; all share the contract in
:mod:`analytics.detectors.base` (higher is more anomalous, NaN in gives NaN out, warm-up scores
0, per-signal reset). :class:`DetectorSet` runs several over one block in a single pass over
rows and combines them: the combined score of a sample is the largest ``score / threshold``
over the detectors, so 1.0 means "at the threshold of the detector most sure of it".
Every parameter may be a scalar or an array with one value per signal (per-signal overrides).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from analytics.detectors.base import Param, RowDetector, check_params, per_signal
from analytics.detectors.cusum import Cusum
from analytics.detectors.fused import fused_set
from analytics.detectors.level import EwmaLevel
from analytics.detectors.limits import OutOfRange
from analytics.detectors.robust import RobustLevel
from analytics.detectors.spike import Spike
from analytics.detectors.stuck import Stuck

#: Every detector, by name: the one list. Config, replay, defaults and alarm tags derive from it.
REGISTRY: dict[str, type[RowDetector]] = {}
DEFAULT_SET = ("level", "spike", "cusum", "stuck", "range")


def register(detector: type[RowDetector]) -> type[RowDetector]:
    """Add a detector class (usable as a class decorator); its ``name`` is its key."""
    if not detector.name:
        raise ValueError(f"{detector.__name__} has no name")
    REGISTRY[detector.name] = detector
    return detector


for _builtin in (EwmaLevel, Spike, Cusum, Stuck, OutOfRange, RobustLevel):
    register(_builtin)

#: Detectors that read state another detector computes on the same row step after it; those
#: that read another's state from *before* the row (CUSUM reads the level's mean) step before it.
_STEP_ORDER = {"cusum": -1, "stuck": 1}


@dataclass
class DetectorSettings:
    """Which detectors run and their parameters (scalars, or arrays of one value per signal)."""

    detectors: tuple[str, ...] = DEFAULT_SET
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Score the default set on the fused float32 kernel when it supports the settings
    #: (:mod:`analytics.detectors.fused`); False steps each detector's own float64 ``step``
    #: (the reference, several times slower).
    fused: bool = True


def _build_order(names: tuple[str, ...]) -> list[str]:
    """``names`` and what they require, each after its requirements."""
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order:
            return
        if name in path:
            raise ValueError(f"detectors require each other in a circle: {' -> '.join((*path, name))}")
        cls = REGISTRY.get(name)
        if cls is None:
            raise ValueError(f"unknown detector {name!r}: choose from {sorted(REGISTRY)}")
        for dep in cls.requires:
            visit(dep, (*path, name))
        order.append(name)

    for name in names:
        visit(name, ())
    return order


class DetectorSet:
    """Runs detectors over a block in one pass over rows; combines them into one score.

    ``kernel`` says how the set is scored: ``"fused"`` (the default set on the float32 kernel)
    or ``"per-detector"``; ``kernel_reason`` says why the fused kernel is not used.
    """

    def __init__(
        self,
        n_signals: int,
        settings: DetectorSettings | None = None,
        low: NDArray[np.float64] | None = None,
        high: NDArray[np.float64] | None = None,
    ) -> None:
        settings = settings or DetectorSettings()
        self.n_signals = n_signals
        p: Mapping[str, dict[str, Any]] = settings.params
        built: dict[str, RowDetector] = {}
        in_set = set(settings.detectors)
        for name in _build_order(tuple(settings.detectors)):
            cls = REGISTRY[name]
            if cls.uses_limits:
                built[name] = cls(n_signals, low=low, high=high)  # type: ignore[call-arg]
                continue
            given = check_params(name, cls.params, p.get(name, {}))
            deps = {d: det for d, det in built.items() if d in cls.requires or d in in_set}
            built[name] = cls(n_signals, deps=deps, **{k: v for k, v in given.items() if v is not None})  # type: ignore[call-arg]
        self.built = built
        self.detectors: list[RowDetector] = [
            built[name] for name in settings.detectors if getattr(built[name], "active", True)
        ]
        self.detectors.sort(key=lambda d: _STEP_ORDER.get(d.name, 0))
        #: Built only because another detector reads it: stepped, never scored.
        self._step_only = [d for name, d in built.items() if name not in in_set]
        level = built.get("level")
        self.level = level if isinstance(level, EwmaLevel) else EwmaLevel(n_signals)
        self.names = [d.name for d in self.detectors]
        self._inv = [per_signal(1.0 / np.asarray(d.threshold, np.float64), n_signals) for d in self.detectors]
        self._rows = [np.empty(n_signals) for _ in self.detectors]
        # Detectors whose threshold is 1 everywhere need no normalising multiply.
        self._scaled = [not np.all(inv == 1.0) for inv in self._inv]
        self._scratch = np.empty(n_signals)
        self._fused = None
        self.kernel, self.kernel_reason = "per-detector", "fused=False"
        if settings.fused:
            self._fused, why = fused_set(self.detectors)
            if self._fused is not None:
                self.kernel, self.kernel_reason = "fused", ""
            else:
                self.kernel_reason = why

    def update(
        self, block: NDArray[np.float64], on: float = 1.0, out: NDArray[np.float64] | None = None
    ) -> tuple[NDArray[np.float64], dict[tuple[int, int], str]]:
        """Combined scores, and which detector scored highest where the combined score >= ``on``.

        ``out`` (same shape as ``block``) receives the scores when given: reusing one buffer
        spares the page faults of a new array on every call.
        """
        block = np.asarray(block, dtype=np.float64)
        if block.ndim != 2 or block.shape[1] != self.n_signals:
            raise ValueError(f"expected a [samples, {self.n_signals}] block, got {block.shape}")
        if out is not None and out.shape != block.shape:
            raise ValueError(f"out has shape {out.shape}; the block has {block.shape}")
        combined = np.empty_like(block) if out is None else out
        fired: dict[tuple[int, int], str] = {}
        # A row with a NaN sums to NaN (so may one holding +inf and -inf: it is then only looked at
        # sample by sample). One summing pass is several times cheaper than isnan(block).any(1).
        gaps: NDArray[np.bool_] = np.isnan(np.add.reduce(block, axis=1))
        if self._fused is not None:
            return combined, self._fused.run(block, combined, on, gaps)
        for i in range(block.shape[0]):
            valid = ~np.isnan(block[i]) if gaps[i] else None
            self._row(i, block[i], None if valid is None or valid.all() else valid, combined[i], on, fired)
        return combined, fired

    def _row(
        self,
        i: int,
        x: NDArray[np.float64],
        valid: NDArray[np.bool_] | None,
        row: NDArray[np.float64],
        on: float,
        fired: dict[tuple[int, int], str],
    ) -> None:
        """One row through each detector's own ``step`` (float64), combined into ``row``."""
        for j, det in enumerate(self.detectors):
            s = row if j == 0 else self._rows[j]
            det.step(x, valid, s)
            if self._scaled[j]:
                s *= self._inv[j]
            if j:
                np.fmax(row, s, out=row)
        for det in self._step_only:
            det.step(x, valid, self._scratch)
        if valid is not None:
            row[~valid] = np.nan
        if np.fmax.reduce(row) >= on:
            hits = np.flatnonzero(row >= on)
            # ``row`` holds the first detector's score folded into the maximum: a hit is the
            # first detector's unless another detector reaches the combined value.
            names = [self.names[0]] * hits.size
            if len(self._rows) > 1:
                others = np.stack([r[hits] for r in self._rows[1:]])
                best = np.nanargmax(np.where(np.isnan(others), -np.inf, others), axis=0)
                reached = others[best, np.arange(hits.size)] >= row[hits]
                names = [
                    self.names[b + 1] if ok else self.names[0]
                    for b, ok in zip(best.tolist(), reached.tolist(), strict=True)
                ]
            for col, name in zip(hits.tolist(), names, strict=True):
                fired[(i, col)] = name

    def reset(self, signals: NDArray[np.intp]) -> None:
        for det in self.built.values():
            det.reset(signals)
        if self._fused is not None:
            self._fused.reset(np.asarray(signals, np.intp))


__all__ = [
    "DEFAULT_SET",
    "REGISTRY",
    "Cusum",
    "DetectorSet",
    "DetectorSettings",
    "EwmaLevel",
    "OutOfRange",
    "Param",
    "RobustLevel",
    "RowDetector",
    "Spike",
    "Stuck",
    "register",
]
