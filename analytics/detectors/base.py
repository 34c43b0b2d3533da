"""The detector contract, shared by every detector module, and the registry of detectors.

A detector scores a time-major block ``[samples, signals]`` (float64, NaN = no sample) and
returns scores of the same shape: higher is more anomalous, NaN where the sample was NaN. Its
``threshold`` is the score at which it calls a sample anomalous on its own, so ``score /
threshold`` compares detectors. State is a few arrays per signal, listed in ``_state`` with
their initial values; ``reset(signals)`` and ``grow(n)`` work from that list. Detectors step
one row at a time, vectorised over signals: a row (tens of kB) stays in cache, which makes a
loop over rows faster in numpy than any vectorisation along time.

A detector module registers its class with ``@register`` and is named by an entry point of the
group ``edge_agent.detectors`` (``pyproject.toml``), built in or in a package of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
from numpy.typing import NDArray

from edge_agent.registry import Registry

Row = NDArray[np.float64]
Mask = NDArray[np.bool_]


@dataclass(frozen=True)
class Param:
    """One tunable parameter of a detector: default, bounds and meaning (with its unit).

    Configuration (``agent.yaml``, replay files), defaults and docs are all derived from these
    declarations. ``per_signal`` parameters may be given as one value per signal.
    """

    default: float | int | None
    doc: str
    integer: bool = False
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    per_signal: bool = True
    #: For a default of None: the default as a function of the parameters given (or defaulted).
    derive: Callable[[dict[str, Any]], Any] | None = None

    def default_for(self, given: dict[str, Any]) -> Any:
        """The default, derived from ``given`` where it depends on another parameter."""
        if self.default is None and self.derive is not None:
            return self.derive(given)
        return self.default

    def problem(self, value: object) -> str | None:  # noqa: PLR0911 - one return per kind of problem
        """What is wrong with ``value`` (a scalar or per-signal array), or None."""
        arr = np.asarray(value, np.float64)
        if arr.size and not np.isfinite(arr).all():
            return "must be a finite number"
        if self.integer and not np.all(arr == np.round(arr)):
            return "must be a whole number"
        if self.gt is not None and np.any(arr <= self.gt):
            return f"must be greater than {self.gt:g}"
        if self.ge is not None and np.any(arr < self.ge):
            return f"must be at least {self.ge:g}"
        if self.lt is not None and np.any(arr >= self.lt):
            return f"must be less than {self.lt:g}"
        if self.le is not None and np.any(arr > self.le):
            return f"must be at most {self.le:g}"
        return None


def check_params(detector: str, declared: dict[str, Param], given: dict[str, Any]) -> dict[str, Any]:
    """``given`` checked against the declarations, with defaults filled in; raises ValueError."""
    unknown = set(given) - set(declared)
    if unknown:
        raise ValueError(f"{detector}: unknown parameters {sorted(unknown)}; it has {sorted(declared)}")
    out: dict[str, Any] = {}
    for name, param in declared.items():
        value = given.get(name, param.default)
        if value is None:
            out[name] = None
            continue
        if not param.per_signal and np.ndim(value) > 0:
            raise ValueError(f"{detector}.{name} is one value for all signals, not one per signal")
        problem = param.problem(value)
        if problem is not None:
            raise ValueError(f"{detector}.{name} {problem} (got {value!r})")
        out[name] = value
    return out


def per_signal(value: object, n: int, dtype: type[np.floating] = np.float64) -> NDArray[np.floating]:
    """A parameter given as a scalar or one value per signal, as an array of ``n`` values."""
    return np.broadcast_to(np.asarray(value, dtype), (n,)).copy()


class RowDetector:
    """Base class: subclasses set ``name``, ``threshold``, ``params``, ``_state`` and implement ``step``.

    ``params`` declares the keyword arguments of the constructor (after ``n_signals``).
    ``requires`` names detectors this one reads from (CUSUM reads the level's mean); a set builds
    them first and passes them as ``deps``, scoring them only when they are in the set themselves.
    ``uses_limits`` detectors take the profile's engineering limits (``low``, ``high``).
    """

    name: ClassVar[str] = ""
    params: ClassVar[dict[str, Param]] = {}
    requires: ClassVar[tuple[str, ...]] = ()
    uses_limits: ClassVar[bool] = False
    #: Order among the row detectors of a set: one that reads another's state from *before* the
    #: row (CUSUM reads the level's mean) steps first (lower).
    step_order: ClassVar[int] = 0
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


class ChunkDetector(RowDetector):
    """A detector that scores whole chunks of rows from the forecast model's view of them.

    It requires ``forecast`` (:class:`~analytics.detectors.forecast.ForecastModel`); the set
    hands it each chunk's :class:`~analytics.detectors.forecast.ChunkView` and an ``out``
    buffer of the chunk's shape for its raw scores (NaN at gaps).
    """

    requires: ClassVar[tuple[str, ...]] = ("forecast",)
    #: A sum over samples (a CUSUM): held at 0 while a machine's state change settles.
    sums: ClassVar[bool] = False

    def __init__(self, n_signals: int, deps: object = None) -> None:
        super().__init__(n_signals)

    def score(self, view: Any, out: NDArray[np.float64]) -> None:
        raise NotImplementedError

    def step(self, x: Row, valid: Mask | None, out: Row) -> None:
        raise TypeError(f"{self.name} scores chunks; run it in a DetectorSet")


D = TypeVar("D", bound=type[RowDetector])

#: Every detector, by name: the one list. Config, replay, defaults and alarm tags derive from it.
DETECTORS: Registry[type[RowDetector]] = Registry("detector", "edge_agent.detectors", lambda cls: cls.name)


def register(detector: D) -> D:
    """Add a detector class (a class decorator); its ``name`` is its key."""
    if not detector.name:
        raise ValueError(f"{detector.__name__} has no name")
    DETECTORS.register(detector)
    return detector


def keep(valid: Mask | None, new: Row, old: Row) -> None:
    """``old[:] = new`` where the sample was valid (all of it when ``valid`` is None)."""
    if valid is None:
        old[:] = new
    else:
        np.copyto(old, new, where=valid)
