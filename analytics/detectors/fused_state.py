"""The fused anomaly path's state, and what happens at period boundaries.

:class:`FusedState` holds, per signal, what :class:`~analytics.detectors.fused.FusedDefault`
carries from one chunk to the next (float32 where it may be, the level's mean in float64), and
does the work of a period boundary: the mean and scale take the period's samples, warming
signals get their running statistics, and the scales are frozen for the next period. Formulas
and units: :mod:`analytics.detectors.fused`.

Examples
--------
A signal warms up for ``grace`` (30) samples and starts scoring at the next period boundary (32):

>>> import numpy as np
>>> from analytics.detectors import DetectorSet
>>> x = np.random.default_rng(0).normal(5.0, 1.0, size=(48, 1))
>>> detectors = DetectorSet(1)
>>> scores, _ = detectors.update(x)
>>> bool((scores[:32] == 0).all()), bool((scores[32:] > 0).all()), detectors.level.count.tolist()
(True, True, [32.0])
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from analytics.detectors.base import Mask, per_signal
from analytics.detectors.cusum import _DIFF_TO_SIGMA, Cusum
from analytics.detectors.level import _CLIP, EwmaLevel
from analytics.detectors.limits import OutOfRange
from analytics.detectors.spike import _GAUSS, Spike
from analytics.detectors.stuck import Stuck

PERIOD = 8
_F = np.float32
F32 = NDArray[np.float32]


def _f32(value: object, n: int) -> F32:
    """A parameter (scalar or one value per signal) as a float32 array of ``n`` values."""
    return per_signal(value, n, _F).astype(_F, copy=False)


class FusedState:
    """Per-signal state of the fused path and its period boundaries."""

    def __init__(
        self, names: list[str], level: EwmaLevel, spike: Spike, cusum: Cusum, stuck: Stuck, limits: OutOfRange | None
    ) -> None:
        self.level, self.spike, self.cusum, self.stuck, self.limits = level, spike, cusum, stuck, limits
        n = self.n_signals = level.n_signals
        p = PERIOD
        #: Each detector's normalised scores, in the set's order (for naming the detector that fired).
        self.names = names
        self.parts = np.empty((len(names), p, n), _F)
        self._part = {name: self.parts[i] for i, name in enumerate(names)}
        self._z = np.empty((p + 1, n), _F)  # x - ref; row 0 is the last sample before the chunk
        self._step = np.empty((p, n), _F)  # |x_t - x_(t-1)|
        self._clipped = np.empty((p, n), _F)
        self._r = np.empty((p, n), _F)
        # CUSUM steps and sums side by side, up | down | spread, so a row is two calls, not six:
        # steps r - k | -r - k | r^2 - 1 - k_var; row 0 of the sums is carried from the last row.
        self._steps = np.empty((p, 3 * n), _F)
        self._sums = np.zeros((p + 1, 3 * n), _F)
        self._zeros3 = np.zeros(3 * n, _F)  # max(x, array) is several times faster than max(x, 0.0)
        self._run = np.zeros((1, n), _F)  # stuck run lengths (samples) after the last chunk
        self._combined = np.empty((p, n), _F)
        self._masks = np.empty((3, p, n), _F)  # for chunks where many columns have a gap
        self._range = np.empty((p, n)) if limits is not None else None
        self._tmp, self._update = np.empty(n, _F), np.empty(n, _F)
        self._ones = np.ones(p, _F)
        self._no_columns = np.empty(0, np.intp)
        self._stuck_cols: NDArray[np.intp] | None = None
        self._stuck_scores = self._empty_scores = np.empty((0, 0), _F)
        self._r_bound, self._widest = np.empty(n, _F), np.empty(n, _F)
        # Level: the mean at the period start (float64) and the period's sums.
        self._ref = np.array(level.mean, np.float64)
        self._d, self._running, self._shift = np.empty((p, n), _F), np.empty((p, n), _F), np.empty((p, n), _F)
        self._alpha_warm = np.zeros(n, _F)  # alpha for warm signals, 0 for warming ones
        #: Signals without a sample yet: their first sample becomes ``ref`` (float32 then keeps
        #: the digits of a 1e6 kWh reading from the first period on).
        self._unanchored = level.count == 0
        self._pending, self._pending_sq, self._pending_n = np.zeros(n, _F), np.zeros(n, _F), np.zeros(n, _F)
        self._var = np.array(level.var, _F)  # the level's variance (float32 here; stored back)
        self._var_start = np.zeros(n, _F)
        self._last = np.array(spike.prev, np.float64)  # type: ignore[attr-defined]  # last valid sample
        np.subtract(self._last, self._ref, out=self._z[0], casting="same_kind")
        self._z0_nan = bool(np.isnan(self._z[0]).any())
        # Spike: the step scale; for warming signals the period's non-zero steps.
        self._scale = np.array(spike.scale, _F)  # type: ignore[attr-defined]
        self._step_sum, self._step_n = np.zeros(n, _F), np.zeros(n, _F)
        # Scales frozen for the period: clip bounds and inverse scales, thresholds folded in.
        self._hi, self._lo = np.empty(n, _F), np.empty(n, _F)
        self._inv_level, self._inv_spike, self._inv_noise = np.empty(n, _F), np.empty(n, _F), np.empty(n, _F)
        self._frozen_scale, self._floor, self._scratch64 = np.empty(n, _F), np.zeros(n, _F), np.empty(n)
        self._tiny = np.full(n, 1e-9, _F)
        self._params()
        self._warm_masks()

    def _params(self) -> None:
        n, p = self.n_signals, PERIOD
        lv, cu = self.level, self.cusum
        self._alpha = _f32(lv.alpha, n)
        self._alpha64, self._grace = per_signal(lv.alpha, n), per_signal(lv.grace, n)
        self._b = per_signal(lv.var_alpha, n)
        self._spike_alpha, self._spike_grace = _f32(self.spike.alpha, n), per_signal(self.spike.grace, n)
        b = np.asarray(lv.var_alpha, np.float64)
        q = 1.0 - b
        # The level's variance, v <- (1 - b)(v + b c^2) per sample, over the last j samples of a
        # period: v q^j + sum_t b q^(j - t + 1) c_t^2. Row t of a period gets weight b q^(p - t).
        powers = np.arange(p, 0, -1, dtype=np.float64)
        if b.ndim == 0:
            self._var_weights = (b * q**powers).astype(_F)
        else:
            self._var_weights = (b[None, :] * q[None, :] ** powers[:, None]).astype(_F)
        self._var_keep = q
        self._decay = q ** np.arange(p + 1, dtype=np.float64) if b.ndim == 0 else np.empty(0)
        k = _f32(cu.k, n)
        self._k, self._minus_k = k, -k
        self._c = _f32(1.0 + np.asarray(cu.k_var, np.float64), n)
        # Scores are kept in units of CUSUM's decision interval h until the end of a chunk, where
        # one multiply by 1 / h writes them to ``out``: the other detectors' thresholds fold h in.
        h = per_signal(cu.threshold, n)
        self._h, self._inv_h = h.astype(_F), (1.0 / h).astype(_F)
        self._cap = np.tile(_f32(cu._cap, n), 3)
        self._tolerance = _f32(self.stuck.tolerance, n)
        self._max_tolerance = float(self._tolerance.max(initial=0.0))
        self._inv_samples = _f32(h / np.asarray(self.stuck.samples, np.float64), n)
        self._rel_floor = per_signal(lv.rel_floor, n)
        self._level_over = _f32(h / np.asarray(lv.threshold, np.float64), n)
        # A level score above 3 / threshold is a residual beyond 3 s (a little below: rounding).
        self._clip_bound = self._level_over * _F(_CLIP * 0.999)
        self._spike_over = _f32(h / (_GAUSS * np.asarray(self.spike.threshold, np.float64)), n)
        self._min_h = float(h.min(initial=np.inf))
        self._on, self._on_h = 1.0, self._h.copy()
        self._noise_over = np.full(n, 1.0 / _DIFF_TO_SIGMA, _F)

    def _warm_masks(self) -> None:
        """Which signals have finished their warm-up (decided at period boundaries; once all
        have, only a reset changes that)."""
        self._level_warm = self.level.count >= self._grace
        self._spike_warm = self.spike.count >= self._spike_grace  # type: ignore[attr-defined]
        self._level_warming = not bool(self._level_warm.all())
        np.multiply(self._alpha, self._level_warm, out=self._alpha_warm)
        self._spike_warming = not bool(self._spike_warm.all())
        if self._level_warming:
            self._var_start[:] = self._var

    def reset(self, signals: NDArray[np.intp]) -> None:
        """Start ``signals`` afresh (the detectors' own state was reset by the set)."""
        n = self.n_signals
        self._unanchored[signals] = True
        self._pending[signals] = self._pending_sq[signals] = self._pending_n[signals] = 0.0
        self._last[signals] = np.nan
        self._z[0, signals] = np.nan
        self._z0_nan = True
        self._scale[signals] = self.spike.scale[signals]  # type: ignore[attr-defined]
        self._step_sum[signals] = self._step_n[signals] = 0.0
        for block in range(3):
            self._sums[0, block * n + signals] = 0.0
        self._run[0, signals] = 0.0
        self._level_warm[signals] = self._spike_warm[signals] = False
        self._alpha_warm[signals] = 0.0
        self._level_warming = self._spike_warming = True
        self._var_start[signals] = self._var[signals] = 0.0
        self._quiet(signals, signals)  # at once, not only from the next period

    def store(self) -> None:
        """Write the state back into the detectors (for a look at them; this path keeps its own)."""
        lv, n, carried = self.level, self.n_signals, self._sums[0]
        np.multiply(self._pending, self._alpha, out=self._tmp)
        np.add(self._ref, np.where(self._level_warm, self._tmp, 0.0), out=lv.mean)
        lv.var[:] = self._var
        self.spike.scale[:] = self._scale  # type: ignore[attr-defined]
        self.spike.prev[:] = self._last  # type: ignore[attr-defined]
        self.cusum.up[:] = carried[:n]  # type: ignore[attr-defined]
        self.cusum.down[:] = carried[n : 2 * n]  # type: ignore[attr-defined]
        self.cusum.spread[:] = carried[2 * n :]  # type: ignore[attr-defined]
        self.stuck.run[:] = self._run[0]  # type: ignore[attr-defined]

    def _rebase(self) -> None:
        """The period ended: the level's mean and the spike's scale take its samples; ``ref``
        becomes the new mean, so residuals are ``z`` itself and float32 keeps their digits."""
        delta = self._tmp
        np.multiply(self._pending, self._alpha, out=delta)
        if self._level_warming:
            self._warm_up_level(delta)
        self._ref += delta
        # From the float64 sample, not z - delta: a repeated value must give a step of exactly 0.
        np.subtract(self._last, self._ref, out=self._scratch64)
        self._z[0] = self._scratch64
        self._pending[:] = 0.0
        if self._spike_warming:
            cols = np.flatnonzero(~self._spike_warm)
            count = self.spike.count  # type: ignore[attr-defined]
            seen = count[cols] + self._step_n[cols]
            mean = (self._scale[cols] * count[cols] + self._step_sum[cols]) / np.maximum(seen, 1.0)
            self._scale[cols] = np.where(seen > 0, mean, self._scale[cols])
            count[cols] = seen
            self._step_sum[:] = self._step_n[:] = 0.0
        if self._level_warming or self._spike_warming:
            self._warm_masks()

    def _warm_up_level(self, delta: F32) -> None:
        """Running mean and variance of whole periods for warming signals (rate at least 0.1)."""
        cols = np.flatnonzero(~self._level_warm)
        count, var = self.level.count, self._var
        c, n = count[cols], self._pending_n[cols].astype(np.float64)
        mean = self._pending[cols] / np.maximum(n, 1.0)
        spread = np.maximum(self._pending_sq[cols] / np.maximum(n, 1.0) - mean * mean, 0.0)
        share = n / np.maximum(c + n, 1.0)
        w_mean = np.where(n > 0, np.maximum(share, 1.0 - (1.0 - np.maximum(self._alpha64[cols], 0.1)) ** n), 0.0)
        w_var = np.where(n > 0, np.maximum(share, 1.0 - (1.0 - self._b[cols]) ** n), 0.0)
        delta[cols] = w_mean * mean
        var[cols] = (1.0 - w_var) * self._var_start[cols] + w_var * spread + w_var * (1.0 - w_var) * mean * mean
        count[cols] = c + n
        self._pending_sq[:] = self._pending_n[:] = 0.0

    def _refresh(self) -> None:
        """Freeze the scales for the period; warming signals get no clipping and score 0."""
        s, floor = self._hi, self._floor
        if self.cusum._rows % (8 * PERIOD) == 0 or self._level_warming:
            # s = sqrt(max(v, (rel_floor m)^2 + 1e-18)), as the level detector; the floor follows
            # the mean slowly: every 64 samples is plenty (the detector refreshes it as often).
            np.multiply(self._ref, self._rel_floor, out=floor, casting="same_kind")
            floor *= floor
            floor += _F(1e-18)
        np.maximum(self._var, floor, out=s)
        np.sqrt(s, out=s)
        np.divide(self._level_over, s, out=self._inv_level)
        s *= _CLIP
        np.negative(s, out=self._lo)
        scale = self._scale
        np.maximum(scale, self._tiny, out=scale)
        self._frozen_scale[:] = scale
        np.divide(self._spike_over, scale, out=self._inv_spike)
        np.divide(self._noise_over, scale, out=self._inv_noise)
        # |r| = level score * inv_noise / inv_level: beyond 12 where the level score exceeds
        # 12 inv_level / inv_noise = 12 inv_level scale / noise_over (a little below: rounding).
        np.multiply(self._inv_level, scale, out=self._r_bound)
        self._r_bound *= _F(12.0 * 0.999 * _DIFF_TO_SIGMA)
        if self._level_warming or self._spike_warming:
            self._quiet(~self._level_warm, ~self._spike_warm)

    def _quiet(self, level: NDArray[np.intp] | Mask, spike: NDArray[np.intp] | Mask) -> None:
        """Frozen scales of warming signals: the level's (and so CUSUM's) signals are not
        clipped and score 0, the spike's score 0."""
        self._hi[level], self._lo[level] = np.inf, -np.inf
        self._inv_level[level] = self._inv_noise[level] = 0.0
        self._inv_spike[spike] = 0.0

    def _anchor(self, x: NDArray[np.float64]) -> None:
        """``ref`` of a signal without a sample yet: its first sample in ``x``, if any."""
        cols = np.flatnonzero(self._unanchored)
        seen = ~np.isnan(x[:, cols])
        has = seen.any(axis=0)
        first = np.argmax(seen, axis=0)
        self._ref[cols[has]] = x[first[has], cols[has]]
        self._unanchored[cols[has]] = False
