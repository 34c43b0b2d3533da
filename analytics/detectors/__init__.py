"""Streaming anomaly detectors, vectorised over signals (time-major blocks ``[samples, signals]``).

Each module holds one detector and states its score formula; all share the contract in
:mod:`analytics.detectors.base` (higher is more anomalous, NaN in gives NaN out, warm-up scores
0, per-signal reset). :class:`DetectorSet` runs a set over a block and combines it: the combined
score of a sample is the largest ``score / threshold`` over the detectors, so 1.0 means "at the
threshold of the detector most sure of it". Every parameter may be a scalar or an array with one
value per signal (per-signal overrides).

The default set models what normal looks like on plant signals (:mod:`~analytics.detectors.forecast`):
``surprise`` (spikes and jumps no model of normal explains), ``deviation`` (a forecast error that
persists), ``shift`` (a level or drift away from the long-term normal), ``variance`` (noise that
grows), ``stuck`` (a moving signal that froze) and ``range`` (outside the profile's limits). The
earlier detectors (``level``, ``spike``, ``cusum``, ``robust``) remain available by name.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(2)
>>> x = 20 + np.cumsum(rng.normal(0, 0.3, (3000, 3)), axis=0) * 0.1 + rng.normal(0, 0.5, (3000, 3))
>>> x[2500, 1] += 8.0
>>> scores, fired = DetectorSet(3).update(x)
>>> bool(scores[2500, 1] >= 1.0), fired.get((2500, 1)), bool(np.nanmax(np.delete(scores[500:, 1], 2000)) < 1.0)
(True, 'surprise', True)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edge_agent.analytics.detectors.base import (
    DETECTORS,
    ChunkDetector,
    Param,
    RowDetector,
    check_params,
    per_signal,
    register,
)
from edge_agent.analytics.detectors.forecast import ChunkView, ForecastModel
from edge_agent.analytics.detectors.plausible import CAP, IMPLAUSIBLE, Plausibility
from edge_agent.analytics.detectors.season import PERIOD

#: Every detector, by name (:data:`~edge_agent.analytics.detectors.base.DETECTORS`): each module
#: registers its own, and the entry points of ``edge_agent.detectors`` name the modules.
REGISTRY = DETECTORS
DEFAULT_SET = ("surprise", "deviation", "shift", "variance", "stuck", "range")


def scored(name: str) -> bool:
    """Whether a registered detector gives scores (``forecast`` is a model the others read)."""
    return bool(getattr(REGISTRY[name], "scored", True))


@dataclass
class DetectorSettings:
    """Which detectors run and their parameters (scalars, or arrays of one value per signal)."""

    detectors: tuple[str, ...] = DEFAULT_SET
    params: dict[str, dict[str, Any]] = field(default_factory=dict)


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


class Fired:
    """Which detector scored highest, for the samples whose combined score reached ``on``.

    Looked up only where an alarm starts: the cells are kept as arrays and turned into a
    mapping on first use.
    """

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self._parts: list[tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp]]] = []
        self._map: dict[tuple[int, int], str] | None = None

    def add(self, rows: NDArray[np.intp], cols: NDArray[np.intp], which: NDArray[np.intp]) -> None:
        self._parts.append((rows, cols, which))
        self._map = None

    def get(self, key: tuple[int, int], default: str | None = None) -> str | None:
        if self._map is None:
            self._map = {}
            for rows, cols, which in self._parts:
                for r, c, w in zip(rows.tolist(), cols.tolist(), which.tolist(), strict=True):
                    self._map[(r, c)] = self.names[w]
        return self._map.get(key, default)

    def __len__(self) -> int:
        return sum(p[0].shape[0] for p in self._parts)


class DetectorSet:
    """Runs detectors over a block, chunk by chunk of the row clock; combines them into one score."""

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
            kwargs = {k: v for k, v in given.items() if v is not None}
            built[name] = cls(n_signals, deps=deps, **kwargs)  # type: ignore[call-arg]
        self.built = built
        model = built.get("forecast")
        self.model = model if isinstance(model, ForecastModel) else None
        wanted = [built[n] for n in settings.detectors if scored(n) and getattr(built[n], "active", True)]
        self.chunked: list[ChunkDetector] = [d for d in wanted if isinstance(d, ChunkDetector)]
        self.rowwise: list[RowDetector] = sorted(
            (d for d in wanted if not isinstance(d, ChunkDetector)), key=lambda d: d.step_order
        )
        #: Built only because another detector reads it: stepped, never scored.
        self._step_only = [d for n, d in built.items() if n not in in_set and scored(n)]
        self.detectors: list[RowDetector] = [*self.chunked, *self.rowwise]
        self.names = [d.name for d in self.detectors]
        self._inv = [per_signal(1.0 / np.asarray(d.threshold, np.float64), n_signals) for d in self.detectors]
        self._scratch = np.empty(n_signals)
        self._clock = 0  # rows into the current chunk, for sets without the forecast model
        #: Rows left during which each signal's sums stay at 0 (a transition is settling).
        self._settling = np.zeros(n_signals, np.int64)
        #: Rows for which a settling signal may still be held while it is in transition.
        self._settle_budget = np.zeros(n_signals, np.int64)
        #: Each held signal's distance to its level at its last four looks (level sd), a ring.
        self._settle_gaps = np.full((4, n_signals), np.inf)
        self._settle_looks = np.zeros(n_signals, np.int64)
        #: Readings no detector learns from (:mod:`~analytics.detectors.plausible`).
        self.plausibility = Plausibility(n_signals)
        #: What the model said about the last chunk scored (None without the forecast model).
        self.view: ChunkView | None = None

    @property
    def settling(self) -> NDArray[np.bool_]:
        """Per signal: in transition after a machine state change (its sums held at 0)."""
        settling: NDArray[np.bool_] = self._settling > 0
        return settling

    @property
    def position(self) -> int:
        """Rows of the row clock's current chunk already scored (0 to ``PERIOD - 1``)."""
        return self.model.position if self.model is not None else self._clock % PERIOD

    @property
    def kernel(self) -> str:
        """How the set is scored: ``chunked`` (the forecast model) or ``per-row`` (the earlier detectors)."""
        return "chunked" if self.model is not None else "per-row"

    def update(
        self,
        block: NDArray[np.float64],
        on: float = 1.0,
        out: NDArray[np.float64] | None = None,
        ts: NDArray[np.int64] | None = None,
    ) -> tuple[NDArray[np.float64], Fired]:
        """Combined scores, and which detector scored highest where the combined score >= ``on``.

        ``ts`` (UTC ns, the block's shape) lets the model learn each signal's day profile.
        ``out`` (same shape as ``block``) receives the scores when given.
        """
        block = np.asarray(block, dtype=np.float64)
        if block.ndim != 2 or block.shape[1] != self.n_signals:
            raise ValueError(f"expected a [samples, {self.n_signals}] block, got {block.shape}")
        if out is not None and out.shape != block.shape:
            raise ValueError(f"out has shape {out.shape}; the block has {block.shape}")
        if ts is not None and ts.shape != block.shape:
            raise ValueError(f"ts has shape {ts.shape}; the block has {block.shape}")
        combined = np.empty_like(block) if out is None else out
        fired = Fired([*self.names, IMPLAUSIBLE])
        with np.errstate(all="ignore"):  # overflow and 0/0 are handled where they matter
            bad = self._gate(block)
            if bad is not None:
                block = np.where(bad, np.nan, block)
            self._run(block, on, combined, fired, ts)
        if bad is not None:
            # An implausible reading scores the cap, whatever the detectors made of the gap.
            rows, cols = np.nonzero(bad)
            combined[rows, cols] = CAP
            fired.add(rows, cols, np.full(rows.shape[0], len(self.names), np.intp))
        return combined, fired

    def _gate(self, block: NDArray[np.float64]) -> NDArray[np.bool_] | None:
        """Where ``block`` holds implausible readings (None: nowhere); signals that have sent
        readings far from their level for long start afresh (a new range, not a fault)."""
        model = self.model
        level = model.mean if model is not None else None
        known = model.count > 0 if model is not None else None
        bad, far = self.plausibility.check(block, level, known)
        if far.any() or self.plausibility.run.any():
            stale = self.plausibility.stale(far, ~np.isnan(block))
            if stale.shape[0]:
                self.reset(stale)  # from this block on they learn their new range
                bad[:, stale] &= ~far[:, stale]
        return bad if bad.any() else None

    def _run(
        self,
        block: NDArray[np.float64],
        on: float,
        combined: NDArray[np.float64],
        fired: Fired,
        ts: NDArray[np.int64] | None,
    ) -> None:
        """Score ``block`` chunk by chunk of the row clock into ``combined``."""
        buffers = [np.empty((PERIOD, self.n_signals)) for _ in self.detectors]
        i, n = 0, block.shape[0]
        clock = self.model.position if self.model is not None else self._clock
        while i < n:
            rows = min(PERIOD - clock % PERIOD, n - i)
            chunk = block[i : i + rows]
            into = combined[i : i + rows]
            parts = [b[:rows] for b in buffers]
            view = None
            if self.model is not None:
                view = self.model.chunk(chunk, None if ts is None else ts[i : i + rows])
                self.view = view
            settling = np.flatnonzero(self._settling > 0) if self._settling.any() else None
            for j, chunked in enumerate(self.chunked):
                assert view is not None
                chunked.score(view, parts[j])
                if settling is not None and chunked.sums:
                    parts[j][:, settling] = np.where(np.isnan(parts[j][:, settling]), np.nan, 0.0)
                    chunked.reset(settling)
            if settling is not None:
                self._settled_by(settling, rows, view if (clock + rows) % PERIOD == 0 else None)
            first_row = len(self.chunked)
            if self.rowwise or self._step_only:
                for r in range(rows):
                    x = chunk[r]
                    valid = ~np.isnan(x)
                    mask = None if valid.all() else valid
                    for j, det in enumerate(self.rowwise):
                        det.step(x, mask, parts[first_row + j][r])
                    for det in self._step_only:
                        det.step(x, mask, self._scratch)
            self._combine(parts, into, i, on, fired)
            clock += rows
            i += rows
        self._clock = clock % PERIOD

    def _combine(
        self, parts: list[NDArray[np.float64]], into: NDArray[np.float64], first: int, on: float, fired: Fired
    ) -> None:
        if not parts:
            into.fill(0.0)
            return
        for j, part in enumerate(parts):
            np.multiply(part, self._inv[j], out=part)
            if j == 0:
                np.copyto(into, part)
            else:
                np.fmax(into, part, out=into)

        with np.errstate(invalid="ignore"):
            hit = into >= on
        if hit.any():
            rows, cols = np.nonzero(hit)
            stacked = np.stack([np.nan_to_num(p[rows, cols], nan=-np.inf) for p in parts])
            fired.add(rows + first, cols, np.argmax(stacked, axis=0))

    def reset(self, signals: NDArray[np.intp]) -> None:
        for det in self.built.values():
            det.reset(signals)
        self.plausibility.reset(signals)

    def settle(self, signals: NDArray[np.intp], rows: int, longest: int = 0) -> None:
        """Keep the sums of ``signals`` at 0, and the model from learning, for ``rows`` rows, and
        after that while a signal is still on its way to its state's level, up to ``longest`` rows.

        After a machine changes state its signals are in transition (a temperature takes minutes to
        settle): neither normal for the new state nor anomalous. A transition that has not ended
        after ``longest`` rows is scored.
        """
        self._settling[signals] = np.maximum(self._settling[signals], rows)
        self._settle_budget[signals] = np.maximum(self._settle_budget[signals], max(longest, rows))
        self._settle_gaps[:, signals] = np.inf
        if self.model is not None:
            self.model.frozen[signals] = np.maximum(self.model.frozen[signals], rows)

    def _settled_by(self, settling: NDArray[np.intp], rows: int, view: ChunkView | None) -> None:
        """Count ``rows`` off the settling signals; at a chunk's end (``view``), hold on to those
        still heading for their state's level, one chunk at a time, within their budget."""
        left = self._settling[settling] - rows
        self._settle_budget[settling] = np.maximum(self._settle_budget[settling] - rows, 0)
        self._settling[settling] = np.maximum(left, 0)
        if view is None or self.model is None:
            return
        ending = settling[(left <= 0) & (self._settle_budget[settling] > 0)]
        if ending.shape[0] == 0:
            return
        # In transition: more than half a level sd away, and closer than four looks (32 rows)
        # ago: a temperature heading for its level. An offset that stays is not a transition.
        gap = self.model.level_gap(ending, view.x[:, ending])
        slot = self._settle_looks[ending] % self._settle_gaps.shape[0]
        with np.errstate(invalid="ignore"):
            moving = (gap > 0.5) & (gap < self._settle_gaps[slot, ending])
        self._settle_gaps[slot, ending] = gap
        self._settle_looks[ending] += 1
        held = ending[moving]
        self._settling[held] = PERIOD
        self.model.frozen[held] = np.maximum(self.model.frozen[held], PERIOD)
        self._settle_budget[ending[~moving]] = 0

    def save(self, signals: NDArray[np.intp]) -> dict[str, Any]:
        """The state of ``signals`` that belongs to their current regime (machine state)."""
        saved: dict[str, Any] = {}
        if self.model is not None:
            saved["forecast"] = self.model.save(signals)
        for det in self.chunked:
            saved[det.name] = {a: getattr(det, a)[signals].copy() for a in det._state}
        return saved

    def load(self, signals: NDArray[np.intp], saved: dict[str, Any] | None) -> None:
        """Restore what :meth:`save` gave for these signals (None: the regime is new to them)."""
        if self.model is not None:
            self.model.load(signals, None if saved is None else saved["forecast"])
        for det in self.chunked:
            for attr, initial in det._state.items():
                getattr(det, attr)[signals] = initial if saved is None else saved[det.name][attr]


__all__ = [
    "DEFAULT_SET",
    "REGISTRY",
    "ChunkDetector",
    "DetectorSet",
    "DetectorSettings",
    "Fired",
    "ForecastModel",
    "Param",
    "RowDetector",
    "register",
]
