"""Shift and drift: two-sided CUSUM of the EWMA residual, in units of the sample-to-sample noise.

``r = (x - m) / s`` where ``m`` is the EWMA mean of :class:`~analytics.detectors.level.EwmaLevel`
before the sample, and ``s`` the noise scale estimated from non-zero first differences
(``|x - p|`` has mean ``2 s / sqrt(pi)`` for Gaussian noise; a repeated value, from a device
that updates slower than it is polled, says nothing about the noise). Differences barely see a slow drift or a settling
transient, so unlike the EWMA variance they do not learn the very change to be found.
``S+ = max(0, S+ + r - k)``, ``S- = max(0, S- - r - k)`` and, for a rise in variance,
``Sv = max(0, Sv + r**2 - 1 - k_var)`` (squared residuals have a long right tail: their
allowance is larger); the score is ``max(S+, S-, Sv)``, higher is more anomalous,
and ``threshold`` is the decision interval ``h``. ``r`` is clipped to +-12 and each sum is
capped at ``2 h`` (every 8 samples), so an alarm clears soon after the anomaly ends. A level shift or drift keeps
``r`` on one side of 0 and the sums grow until the EWMA catches up; noise is absorbed by the
allowance ``k``. Gaps leave the sums unchanged, and so does a repeated value (a device that
updates slower than it is polled says the same thing again, not something new); while the
level detector warms up ``r`` is 0.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(5)
>>> block = rng.normal(0.0, 1.0, size=(800, 2))
>>> block[400:, 1] += np.arange(400) * 0.05    # a slow drift on signal 1
>>> scores = Cusum(2).update(block)
>>> bool(np.nanmax(scores[:400]) < 25), int(np.argmax(scores[:, 1] > 25)) - 400 < 100
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from edge_agent.analytics.detectors.base import Mask, Param, Row, RowDetector, keep, register
from edge_agent.analytics.detectors.level import EwmaLevel
from edge_agent.analytics.detectors.spike import Spike

#: Mean absolute difference of two independent N(0, s^2) samples is 2 s / sqrt(pi).
_DIFF_TO_SIGMA = math.sqrt(math.pi) / 2


@register
class Cusum(RowDetector):
    name: ClassVar[str] = "cusum"
    step_order: ClassVar[int] = -1  # reads the level's mean from before the row
    params: ClassVar[dict[str, Param]] = {
        "k": Param(1.0, "allowance per sample, in noise units", ge=0),
        "threshold": Param(25.0, "decision interval h, in noise units", gt=0),
        "alpha": Param(0.02, "EWMA rate of the noise scale when no spike detector runs", gt=0, lt=1),
        "k_var": Param(3.0, "allowance of the variance sum, in squared noise units", ge=0),
    }
    #: The level's mean is the reference; a spike detector in the set lends its noise scale.
    requires: ClassVar[tuple[str, ...]] = ("level",)
    _state: ClassVar[dict[str, float]] = {
        "up": 0.0,
        "down": 0.0,
        "spread": 0.0,
        "prev": np.nan,
        "noise": 0.0,
        "steps": 0.0,
    }

    def __init__(
        self,
        n_signals: int,
        deps: Mapping[str, RowDetector] | None = None,
        k: float = 1.0,
        threshold: float = 25.0,
        alpha: float = 0.02,
        k_var: float = 3.0,
    ) -> None:
        super().__init__(n_signals)
        deps = deps or {}
        level = deps.get("level")
        noise_from = deps.get("spike")
        assert level is None or isinstance(level, EwmaLevel)
        assert noise_from is None or isinstance(noise_from, Spike)
        #: The level detector whose mean is the reference (stepped after us by a set, by us when alone).
        self.level = level if level is not None else EwmaLevel(n_signals)
        self.owns_level = level is None
        #: A spike detector already estimating the mean absolute step: its scale is our noise.
        self.noise_from = noise_from
        self.k, self.k_var, self.threshold, self.alpha = k, k_var, threshold, alpha
        self._cap = 2.0 * np.asarray(threshold, np.float64)
        self._rows = 0
        self._r, self._t = np.empty(n_signals), np.empty(n_signals)
        self._scratch = np.empty(n_signals)

    def grow(self, n_signals: int) -> None:
        super().grow(n_signals)
        if self.owns_level:
            self.level.grow(n_signals)
        self._r, self._t, self._scratch = np.empty(n_signals), np.empty(n_signals), np.empty(n_signals)

    def reset(self, signals: np.ndarray) -> None:
        super().reset(signals)
        if self.owns_level:
            self.level.reset(signals)

    def step(self, x: Row, valid: Mask | None, out: Row) -> None:
        up, down, spread, noise = self.up, self.down, self.spread, self.noise  # type: ignore[attr-defined]
        r, t = self._r, self._t
        # A repeated value (a device that updates slower than it is polled) is no new evidence,
        # and a gap none at all: both leave the sums as they are.
        still = x == self.prev  # type: ignore[attr-defined]
        skip = still if valid is None else still | ~valid
        held = (up[skip], down[skip], spread[skip]) if skip.any() else None
        if self.noise_from is not None:
            noise = self.noise_from.scale  # type: ignore[attr-defined]
            keep(valid, x, self.prev)  # type: ignore[attr-defined]
        else:
            self._learn_noise(x, valid)
        # Residual against the level's mean before this sample, in noise units.
        np.subtract(x, self.level.mean, out=r)
        np.multiply(noise, _DIFF_TO_SIGMA, out=t)
        if self.noise_from is None:
            np.maximum(t, 1e-9, out=t)  # a spike detector keeps its scale above that itself
        r /= t
        if self.level._warming or valid is not None:
            r[(self.level.count < self.level.grace) | ~np.isfinite(r)] = 0.0
        # Beyond 12 noise units a sample says nothing more: it only makes the sums slow to clear.
        np.clip(r, -12.0, 12.0, out=r)
        up += r
        up -= self.k
        np.maximum(up, 0.0, out=up)
        down -= r
        down -= self.k
        np.maximum(down, 0.0, out=down)
        np.multiply(r, r, out=t)
        t -= 1.0 + self.k_var
        spread += t
        np.maximum(spread, 0.0, out=spread)
        if held is not None:
            up[skip], down[skip], spread[skip] = held
        # Capped at twice the decision interval: after the anomaly the sums come back within tens
        # of samples instead of paying off a huge outlier for thousands.
        self._rows += 1
        if self._rows % 8 == 0 or valid is not None:
            # Every few rows is enough to keep the sums near the cap.
            np.minimum(up, self._cap, out=up)
            np.minimum(down, self._cap, out=down)
            np.minimum(spread, self._cap, out=spread)
        np.maximum(up, down, out=out)
        np.maximum(out, spread, out=out)
        if valid is not None:
            out[~valid] = np.nan
        if self.owns_level:
            self.level.step(x, valid, self._scratch)

    def _learn_noise(self, x: Row, valid: Mask | None) -> None:
        """Noise scale from first differences (a plain mean while few steps were seen)."""
        prev, noise, steps, t = self.prev, self.noise, self.steps, self._t  # type: ignore[attr-defined]
        np.subtract(x, prev, out=t)
        np.abs(t, out=t)
        # Repeated values (a device that updates slower than we poll) say nothing of the noise.
        seen = np.isfinite(t) & (t > 0.0)
        rate = np.maximum(self.alpha, 1.0 / (steps + 1.0))
        noise += np.where(seen, rate * (np.where(seen, t, 0.0) - noise), 0.0)
        steps += seen
        keep(valid, x, prev)
