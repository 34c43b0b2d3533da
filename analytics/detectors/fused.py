"""The default set fused: level, spike, CUSUM and stuck in one pass, in float32, by periods.

:class:`~analytics.detectors.DetectorSet` scores every sample of the default set here (with
``fused=False`` it steps each detector's own ``step`` instead: the reference, in float64). The
formulas are those of :mod:`~analytics.detectors.level`, :mod:`~analytics.detectors.spike`,
:mod:`~analytics.detectors.cusum` and :mod:`~analytics.detectors.stuck`, computed per *period*
of ``PERIOD`` (8) samples of the row clock, which brings the cost down to about 40 element
operations per sample:

* the level's mean ``m`` and scale ``s``, the spike's step scale and with it CUSUM's noise are
  frozen for the period. Residuals ``x - m`` are taken against the mean as the period began;
  at its end the mean takes the period's winsorised residuals, ``m += alpha * sum(clip(x - m))``,
  the variance the same EWMA as the detector (in closed form, per valid sample), and the step
  scale ``alpha * sum(step - scale)`` over its learnable steps;
* warm-up, per signal: while a signal warms up its level and CUSUM score 0 and its mean and
  variance are running statistics of whole periods (short memory: rate at least 0.1); its spike
  scores 0 and its step scale is the plain mean of the non-zero steps. A signal starts scoring
  at the first period boundary after ``grace`` samples;
* arithmetic runs in float32 on ``x - ref``, where ``ref`` (float64) is the level's mean at the
  period start, so a reading of 1e6 kWh keeps the resolution of its distance to the mean, not
  float32's 0.06 kWh at 1e6. Steps are taken in that frame: a change smaller than about 1e-7 of
  the distance to the mean counts as no change.

Gaps (NaN) are handled per sample as in the detectors: a gap scores NaN and leaves every state
unchanged; the step after it is taken from the last sample. Scores do not depend on how the
stream is cut into blocks, nor on other signals' gaps or resets (the tests check both). They
follow the per-detector path closely but not exactly: a scale frozen for 8 samples does not
react within the period to the sample it scores.

Examples
--------
>>> import numpy as np
>>> from analytics.detectors import DetectorSet, DetectorSettings
>>> x = np.random.default_rng(4).normal(20.0, 1.0, size=(400, 3))
>>> x[300, 1] += 15.0
>>> fused, _ = DetectorSet(3).update(x)
>>> reference, _ = DetectorSet(3, DetectorSettings(fused=False)).update(x)
>>> bool(fused[300, 1] > 1.0), bool(reference[300, 1] > 1.0), bool(fused[100:300].max() < 1.0)
(True, True, True)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from analytics.detectors.base import RowDetector
from analytics.detectors.cusum import _DIFF_TO_SIGMA, Cusum
from analytics.detectors.gaps import Gaps, find_gaps
from analytics.detectors.level import _CLIP, EwmaLevel
from analytics.detectors.limits import OutOfRange
from analytics.detectors.spike import _GAUSS, Spike
from analytics.detectors.stuck import Stuck

PERIOD = 8
_F = np.float32
F32 = NDArray[np.float32]
Mask = NDArray[np.bool_]


def _f32(value: object, n: int) -> F32:
    """A parameter (scalar or one value per signal) as a float32 array of ``n`` values."""
    return np.broadcast_to(np.asarray(value, _F), (n,)).copy()


def _f64(value: object, n: int) -> NDArray[np.float64]:
    return np.broadcast_to(np.asarray(value, np.float64), (n,)).copy()


class FusedDefault:
    """Scores every sample for a set made of level, spike, CUSUM and stuck (and range, if any)."""

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
        self._range = np.empty((p, n)) if limits is not None else None
        self._tmp, self._update = np.empty(n, _F), np.empty(n, _F)
        self._ones = np.ones(p, _F)
        self._no_columns = np.empty(0, np.intp)
        self._stuck_cols: NDArray[np.intp] | None = None
        self._stuck_scores = self._empty_scores = np.empty((0, 0), _F)
        self._r_bound, self._widest = np.empty(n, _F), np.empty(n, _F)
        # Level: the mean at the period start (float64) and the period's sums.
        self._ref = np.array(level.mean, np.float64)
        self._drift = np.zeros(n, _F)  # the mean's change per sample over the last period
        self._positions = np.arange(p, dtype=_F)[:, None]
        self._d = np.empty((p, n), _F)
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
        self._alpha64, self._grace = _f64(lv.alpha, n), _f64(lv.grace, n)
        self._b = _f64(lv.var_alpha, n)
        self._spike_alpha, self._spike_grace = _f32(self.spike.alpha, n), _f64(self.spike.grace, n)
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
        h = np.broadcast_to(np.asarray(cu.threshold, np.float64), (n,))
        self._h, self._inv_h = h.astype(_F), (1.0 / h).astype(_F)
        self._cap = np.tile(_f32(cu._cap, n), 3)
        self._tolerance = _f32(self.stuck.tolerance, n)
        self._max_tolerance = float(self._tolerance.max(initial=0.0))
        self._inv_samples = _f32(h / np.asarray(self.stuck.samples, np.float64), n)
        self._rel_floor = _f64(lv.rel_floor, n)
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
        # Frozen scales of a warming signal: no clipping, level, spike and CUSUM score 0.
        self._level_warm[signals] = self._spike_warm[signals] = False
        self._level_warming = self._spike_warming = True
        self._var_start[signals] = self._var[signals] = 0.0
        self._hi[signals], self._lo[signals] = np.inf, -np.inf
        self._inv_level[signals] = self._inv_spike[signals] = self._inv_noise[signals] = 0.0

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

    def run(
        self, block: NDArray[np.float64], out: NDArray[np.float64], on: float, gap_rows: Mask
    ) -> dict[tuple[int, int], str]:
        """Score ``block`` into ``out``; where a score reaches ``on``, name the detector.

        ``gap_rows`` marks the rows that may hold a NaN (a row without is scored without masks).
        """
        fired: dict[tuple[int, int], str] = {}
        i, n = 0, block.shape[0]
        while i < n:
            clock = self.cusum._rows
            if clock % PERIOD == 0:
                self._rebase()
                self._refresh()
            rows = min(PERIOD - clock % PERIOD, n - i)
            gappy = self._z0_nan or bool(gap_rows[i : i + rows].any())
            self._chunk(block[i : i + rows], out[i : i + rows], clock % PERIOD, gappy)
            self.cusum._rows += rows
            row_max = np.fmax.reduce(out[i : i + rows], axis=1)
            if (row_max >= on).any():
                self._name(fired, np.flatnonzero(row_max >= on), on, i)
            i += rows
        self.store()
        return fired

    def _rebase(self) -> None:
        """The period ended: the level's mean and the spike's scale take its samples; ``ref``
        becomes the new mean, so residuals are ``z`` itself and float32 keeps their digits."""
        delta = self._tmp
        np.multiply(self._pending, self._alpha, out=delta)
        if self._level_warming:
            self._warm_up_level(delta)
        self._ref += delta
        np.multiply(delta, 1.0 / PERIOD, out=self._drift)
        if self._level_warming:
            self._drift[~self._level_warm] = 0.0
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
        if self._level_warming:
            cold = ~self._level_warm
            self._hi[cold], self._lo[cold] = np.inf, -np.inf
            self._inv_level[cold] = self._inv_noise[cold] = 0.0
        if self._spike_warming:
            self._inv_spike[~self._spike_warm] = 0.0

    def _chunk(self, x: NDArray[np.float64], out: NDArray[np.float64], position: int, gappy: bool) -> None:
        """Rows ``x``, all within one period, the first at ``position`` in it."""
        n, z = x.shape[0], self._z
        ends_period = position + n == PERIOD
        if gappy and self._unanchored.any():
            self._anchor(x)
        np.subtract(x, self._ref, out=z[1 : n + 1], casting="same_kind")
        gaps = find_gaps(z[: n + 1], x, self._last) if gappy else None
        if gaps is None:
            self._last[:] = x[n - 1]
        step = self._step[:n]
        np.subtract(z[1 : n + 1], z[:n], out=step)
        np.abs(step, out=step)
        z[0] = z[n]
        # Residuals against the mean as it moves through the period, at its last period's pace.
        d = self._d[:n]
        np.multiply(self._positions[position : position + n], self._drift, out=d)
        np.subtract(z[1 : n + 1], d, out=d)
        if gaps is not None:
            cols = gaps.columns
            self._z0_nan = bool(np.isnan(z[0, cols]).any())
            keep = gaps.valid & ~gaps.no_step
            step[:, cols] = np.where(keep, step[:, cols], 0.0)  # no step at a gap or a first sample
            d[:, cols] = np.where(gaps.valid, d[:, cols], 0.0)  # a gap adds nothing to the sums
        part = self._part
        combined = self._combined[:n]
        repeats = self._spike(step, n, gaps)
        widest = self._level(d, n, gaps)
        self._cusum(d, n, ends_period, step, repeats, widest)
        np.maximum(part["level"][:n], part["spike"][:n], out=combined)
        np.maximum(combined, part["cusum"][:n], out=combined)
        self._stuck(step, n, repeats, combined, gaps)
        if self.limits is not None and self._range is not None:
            self.limits.step(x, None, self._range[:n])
            range_n = part["range"][:n]
            np.multiply(self._range[:n], self._h, out=range_n)
            np.fmax(combined, range_n, out=combined)
        if gaps is not None:
            combined[:, gaps.columns] = np.where(gaps.valid, combined[:, gaps.columns], np.nan)
        np.multiply(combined, self._inv_h, out=out)

    def _anchor(self, x: NDArray[np.float64]) -> None:
        """``ref`` of a signal without a sample yet: its first sample in ``x``, if any."""
        cols = np.flatnonzero(self._unanchored)
        seen = ~np.isnan(x[:, cols])
        has = seen.any(axis=0)
        first = np.argmax(seen, axis=0)
        self._ref[cols[has]] = x[first[has], cols[has]]
        self._unanchored[cols[has]] = False

    def _spike(self, step: F32, n: int, gaps: Gaps | None) -> NDArray[np.intp]:
        """Spike scores against the frozen step scale; the scale learns from the non-zero steps
        scoring below the threshold (a warming signal: the plain mean of its non-zero steps).

        Most columns move every sample and stay below the threshold: their learnable sum is
        ``sum(step) - n * scale``; the few with a zero step (a repeat, a gap) or a spike are
        done sample by sample. Returns the columns with a step within the stuck tolerance."""
        spike_n, total, update = self._part["spike"][:n], self._tmp, self._update
        np.multiply(step, self._inv_spike, out=spike_n)
        # One pass over the chunk tells whether any column needs a look of its own.
        repeated = gaps is not None or step.min() <= self._max_tolerance
        spiked = spike_n.max() >= self._min_h
        odd = repeats = self._no_columns
        if repeated:
            repeats = np.flatnonzero(np.minimum.reduce(step, axis=0) <= self._tolerance)
            odd = repeats
        if spiked:
            odd = np.flatnonzero(np.maximum.reduce(spike_n, axis=0) >= self._h)
            if repeated:
                odd = _union(odd, repeats, self.n_signals)
        np.dot(self._ones[:n], step, out=total)  # zero steps add nothing
        moved_n: NDArray[np.float32] | NDArray[np.intp] | int = n
        if odd.size * 8 > self.n_signals:  # many: a mask over the chunk is cheaper than picking columns
            moved = step > 0.0
            learn = moved & (spike_n < self._h)
            diff = np.subtract(step, self._frozen_scale)
            diff *= learn
            np.dot(self._ones[:n], diff, out=update)
            moved_n = moved.sum(axis=0)
        else:
            np.multiply(self._frozen_scale, n, out=update)
            np.subtract(total, update, out=update)
            if odd.size:
                sub = step[:, odd]
                moved = sub > 0.0
                learn = moved & (spike_n[:, odd] < self._h[odd])
                update[odd] = np.where(learn, sub - self._frozen_scale[odd], 0.0).sum(axis=0)
                if self._spike_warming:
                    moved_n = np.full(self.n_signals, n, np.intp)
                    moved_n[odd] = moved.sum(axis=0)
        if self._spike_warming:
            self._step_sum += total
            self._step_n += moved_n
            update[~self._spike_warm] = 0.0
        update *= self._spike_alpha
        self._scale += update
        return repeats

    def _stuck(self, step: F32, n: int, repeats: NDArray[np.intp], combined: F32, gaps: Gaps | None) -> None:
        """Stuck runs. A column that moved beyond the tolerance at every step has no run (score
        0); only columns with a repeat or a gap are counted, sample by sample. A gap neither
        extends nor breaks a run; a first sample (no step) starts none."""
        cols = repeats if gaps is None else _union(repeats, gaps.columns, self.n_signals)
        carried = self._run[0]
        if cols.size * 8 > self.n_signals:  # many: count every column, a row at a time
            same = (step <= self._tolerance).astype(_F)
            counted: NDArray[np.float32] | None = None
            if gaps is not None:
                g = gaps.columns
                same[:, g] = ((same[:, g] > 0) | ~gaps.valid) & ~gaps.no_step
                counted = np.ones((n, self.n_signals), _F)
                counted[:, g] = gaps.valid
            runs_all = np.empty((n, self.n_signals), _F)
            previous = carried
            for t in range(n):
                np.add(previous, 1.0 if counted is None else counted[t], out=runs_all[t])
                runs_all[t] *= same[t]
                previous = runs_all[t]
            carried[:] = previous
            stuck_n = self._part["stuck"][:n]
            np.multiply(runs_all, self._inv_samples, out=stuck_n)
            np.maximum(combined, stuck_n, out=combined)
            self._stuck_cols, self._stuck_scores = None, self._empty_scores
            return
        runs = carried[cols]
        scores = np.empty((n, cols.size), _F)
        if cols.size:
            same_sub = step[:, cols] <= self._tolerance[cols]
            counted_sub = np.ones((n, cols.size), _F)
            if gaps is not None:
                where = np.searchsorted(cols, gaps.columns)
                same_sub[:, where] = (same_sub[:, where] | ~gaps.valid) & ~gaps.no_step
                counted_sub[:, where] = gaps.valid
            for t in range(n):
                runs += counted_sub[t]
                runs *= same_sub[t]
                scores[t] = runs
            scores *= self._inv_samples[cols]
            combined[:, cols] = np.maximum(combined[:, cols], scores)
        carried[:] = 0.0
        carried[cols] = runs
        self._stuck_cols, self._stuck_scores = cols, scores

    def _level(self, d: F32, n: int, gaps: Gaps | None) -> F32:
        """Level scores; the period's winsorised residuals for the mean at its end (a warming
        signal: also their squares and count); the variance per sample, in closed form.
        Returns each column's largest level score (CUSUM clips only where that allows it)."""
        level_n, clipped = self._part["level"][:n], self._clipped[:n]
        np.abs(d, out=level_n)
        level_n *= self._inv_level
        widest = self._widest
        np.maximum.reduce(level_n, axis=0, out=widest)
        np.minimum(d, self._hi, out=clipped)
        np.maximum(clipped, self._lo, out=clipped)
        ones = self._ones[:n]
        self._pending += np.dot(ones, clipped)
        clipped *= clipped
        if self._level_warming:
            self._pending_sq += np.dot(ones, clipped)
            self._pending_n += n
            if gaps is not None:
                self._pending_n[gaps.columns] -= n - gaps.valid.sum(axis=0)
        var = self._var
        before = var[gaps.columns] if gaps is not None else None
        var *= self._var_keep**n
        weights = self._var_weights[PERIOD - n :]
        if weights.ndim == 1:
            var += np.dot(weights, clipped)
        else:
            var += (clipped * weights).sum(axis=0)
        if gaps is not None and before is not None:
            # Per valid sample: a sample's weight decays with the valid samples after it.
            cols = gaps.columns
            later = np.cumsum(gaps.valid[::-1], axis=0)[::-1]
            if self._var_weights.ndim == 1:  # one rate for all: b q^j from a table
                decay = self._decay[later]
                weights_sub = self._decay[later] * self._b[0]
                var[cols] = before * decay[0] + (clipped[:, cols] * weights_sub).sum(axis=0)
            else:
                keep = self._var_keep[cols]
                var[cols] = before * keep ** later[0] + (clipped[:, cols] * self._b[cols] * keep**later).sum(axis=0)
        return widest

    def _cusum(self, d: F32, n: int, ends_period: bool, step: F32, repeats: NDArray[np.intp], widest: F32) -> None:
        """CUSUM sums on the residual in noise units; capped at 2 h when a period ends.

        ``widest`` (each column's largest level score) tells which columns may hold a residual
        beyond 12 noise units: only those are clipped."""
        m, r = self.n_signals, self._r[:n]
        steps, sums = self._steps[:n], self._sums
        np.multiply(d, self._inv_noise, out=r)
        wide = np.flatnonzero(widest > self._r_bound)
        if wide.size:
            r[:, wide] = np.clip(r[:, wide], -12.0, 12.0)
        np.subtract(r, self._k, out=steps[:, :m])
        np.subtract(self._minus_k, r, out=steps[:, m : 2 * m])
        spreads = steps[:, 2 * m :]
        np.multiply(r, r, out=spreads)
        spreads -= self._c
        # No step, no new evidence: a gap, a repeated value or a first sample leaves the sums as
        # they are. Such columns are among the ``repeats`` (a step within the stuck tolerance).
        if repeats.size * 8 > m:
            steps.reshape(n, 3, m)[...] *= (step > 0.0)[:, None, :]
        elif repeats.size:
            cols = np.concatenate([repeats, repeats + m, repeats + 2 * m])
            steps[:, cols] *= np.tile(step[:, repeats] > 0.0, 3)
        zeros = self._zeros3
        for t in range(n):
            row = sums[t + 1]
            np.add(sums[t], steps[t], out=row)
            np.maximum(row, zeros, out=row)
        if ends_period:
            np.minimum(sums[n], self._cap, out=sums[n])
        cusum_n = self._part["cusum"][:n]
        np.maximum(sums[1 : n + 1, :m], sums[1 : n + 1, m : 2 * m], out=cusum_n)
        np.maximum(cusum_n, sums[1 : n + 1, 2 * m :], out=cusum_n)
        sums[0] = sums[n]

    def _name(self, fired: dict[tuple[int, int], str], rows: NDArray[np.intp], on: float, first_row: int) -> None:
        """The detector with the highest score at each sample of ``rows`` scoring ``on`` or more."""
        if on != self._on:
            self._on, self._on_h = on, (self._h * on).astype(_F)
        found = [np.flatnonzero(self._combined[row] >= self._on_h) for row in rows.tolist()]
        cols = np.concatenate(found)
        hit_rows = np.repeat(rows, [f.size for f in found])
        scores = self.parts[:, hit_rows, cols]  # finite: a hit is a valid sample
        counted = self._stuck_cols
        if counted is not None:  # stuck runs were counted for these columns only: 0 elsewhere
            at = np.searchsorted(counted, cols)
            inside = at < counted.size
            inside[inside] = counted[at[inside]] == cols[inside]
            stuck = scores[self.names.index("stuck")]
            stuck[:] = 0.0
            stuck[inside] = self._stuck_scores[hit_rows[inside], at[inside]]
        names = self.names
        for row, col, b in zip(
            (hit_rows + first_row).tolist(), cols.tolist(), scores.argmax(axis=0).tolist(), strict=True
        ):
            fired[(row, col)] = names[b]


def _union(a: NDArray[np.intp], b: NDArray[np.intp], n: int) -> NDArray[np.intp]:
    """Sorted union of column indices below ``n`` (a mask: np.union1d sorts, ~25 times slower)."""
    mask = np.zeros(n, bool)
    mask[a] = True
    mask[b] = True
    return np.flatnonzero(mask)


def fused_set(detectors: list[RowDetector]) -> FusedDefault | None:
    """The fused path for a set's ``detectors`` when they are the default set, else None."""
    by_kind = {type(d): d for d in detectors}
    if len(by_kind) != len(detectors) or set(by_kind) - {OutOfRange} != {Cusum, EwmaLevel, Spike, Stuck}:
        return None
    cusum, level, spike, stuck = by_kind[Cusum], by_kind[EwmaLevel], by_kind[Spike], by_kind[Stuck]
    limits = by_kind.get(OutOfRange)
    assert isinstance(cusum, Cusum)
    assert isinstance(level, EwmaLevel)
    assert isinstance(spike, Spike)
    assert isinstance(stuck, Stuck)
    assert limits is None or isinstance(limits, OutOfRange)
    if cusum.level is not level or cusum.noise_from is not spike or stuck.steps_from is not spike:
        return None
    return FusedDefault([d.name for d in detectors], level, spike, cusum, stuck, limits)


__all__ = ["PERIOD", "FusedDefault", "fused_set"]
