"""The default set fused: level, spike, CUSUM and stuck in one pass, in float32, by periods.

:class:`~analytics.detectors.DetectorSet` scores every sample of the default set here (with
``fused=False`` it steps each detector's own ``step`` instead: the reference, in float64). The
formulas are those of :mod:`~analytics.detectors.level`, :mod:`~analytics.detectors.spike`,
:mod:`~analytics.detectors.cusum` and :mod:`~analytics.detectors.stuck`, computed per *period*
of ``PERIOD`` (8) samples of the row clock (CUSUM's row count), which brings the cost down to
about 40 element operations per sample:

* the level's scale ``s``, the spike's step scale and with it CUSUM's noise are frozen for the
  period. The mean moves as the EWMA moves it: the j-th sample's residual is taken against
  ``m_j = m + alpha * sum(clip(x_i - m), i < j)``, ``m`` being the mean as the period began and
  the clip at 3 s; at the period's end ``m`` takes the whole sum, the variance the same EWMA as
  the detector (in closed form, per valid sample), and the step scale ``alpha * sum(step -
  scale)`` over its learnable steps (:mod:`analytics.detectors.fused_state` does the period
  boundaries);
* warm-up, per signal: while a signal warms up its level and CUSUM score 0 and its mean and
  variance are running statistics of whole periods (short memory: rate at least 0.1); its spike
  scores 0 and its step scale is the plain mean of the non-zero steps. A signal starts scoring
  at the first period boundary after ``grace`` samples;
* arithmetic runs in float32 on ``x - ref``, where ``ref`` (float64) is the level's mean at the
  period start, so a reading of 1e6 kWh keeps the resolution of its distance to the mean, not
  float32's 0.06 kWh at 1e6. Steps are taken in that frame: a change smaller than about 1e-7 of
  the distance to the mean counts as no change.

Scores are kept in units of CUSUM's decision interval ``h`` (the other thresholds fold ``h`` in)
until one multiply by ``1 / h`` writes them out. Gaps (NaN) are handled per sample as in the
detectors: a gap scores NaN and leaves every state unchanged; the step after it is taken from
the last sample. Scores do not depend on how the stream is cut into blocks, nor on other
signals' gaps or resets (the tests check both, to float32 rounding). They follow the
per-detector path closely but not exactly: a scale frozen for 8 samples does not react within
the period to the sample it scores.

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

from analytics.detectors.base import Mask, RowDetector
from analytics.detectors.cusum import Cusum
from analytics.detectors.fused_state import F32, PERIOD, FusedState
from analytics.detectors.gaps import Gaps, find_gaps
from analytics.detectors.level import EwmaLevel
from analytics.detectors.limits import OutOfRange
from analytics.detectors.spike import Spike
from analytics.detectors.stuck import Stuck


class FusedDefault(FusedState):
    """Scores every sample for a set made of level, spike, CUSUM and stuck (and range, if any)."""

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
            hit_rows = np.flatnonzero(np.fmax.reduce(out[i : i + rows], axis=1) >= on)
            if hit_rows.size:
                self._name(fired, hit_rows, on, i)
            i += rows
        self.store()
        return fired

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
        masks = self._gap_masks(gaps, n) if gaps is not None and self._many(gaps.columns) else None
        d = self._follow_mean(z[1 : n + 1], n, position, gaps, masks)
        if gaps is not None:
            cols = gaps.columns
            z[0, gaps.never] = np.nan  # still no sample: the next one has no step either
            self._z0_nan = gaps.never.size > 0
            if masks is not None:
                step *= masks[1]
                d *= masks[0]
            else:
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
        self._stuck(step, n, repeats, combined, gaps, masks)
        if self.limits is not None and self._range is not None:
            self.limits.step(x, None, self._range[:n])
            range_n = part["range"][:n]
            np.multiply(self._range[:n], self._h, out=range_n)
            np.fmax(combined, range_n, out=combined)
        if masks is not None:
            combined += masks[2]
        elif gaps is not None:
            combined[:, gaps.columns] = np.where(gaps.valid, combined[:, gaps.columns], np.nan)
        np.multiply(combined, self._inv_h, out=out)

    def _gap_masks(self, gaps: Gaps, n: int) -> tuple[F32, F32, F32]:
        """Masks over the whole chunk, for when many columns have a gap: 1 where a sample is
        there (else 0), 1 where it has a step to score, and 0 where it is there (else NaN)."""
        there, stepped, blank = self._masks[0, :n], self._masks[1, :n], self._masks[2, :n]
        there[:] = 1.0
        there[:, gaps.columns] = gaps.valid
        stepped[:] = 1.0
        stepped[:, gaps.columns] = gaps.valid & ~gaps.no_step
        blank[:] = 0.0
        blank[:, gaps.columns] = np.where(gaps.valid, 0.0, np.nan)
        return there, stepped, blank

    def _many(self, columns: NDArray[np.intp]) -> bool:
        """Whether picking ``columns`` out of a chunk costs more than a pass over all of it (a
        pick costs about 30 times a pass per value: the break-even is near 3% of the columns)."""
        return columns.size * 32 > self.n_signals

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
        if self._many(odd):  # a mask over the chunk is cheaper than picking the columns
            moved = step > 0.0
            learn = moved & (spike_n < self._h)
            diff = np.subtract(step, self._frozen_scale)
            diff *= learn
            np.dot(self._ones[:n], diff, out=update)
            if self._spike_warming:  # only a warming signal counts its steps
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

    def _stuck(
        self,
        step: F32,
        n: int,
        repeats: NDArray[np.intp],
        combined: F32,
        gaps: Gaps | None,
        masks: tuple[F32, F32, F32] | None,
    ) -> None:
        """Stuck runs. A column that moved beyond the tolerance at every step has no run (score
        0); only columns with a repeat or a gap are counted, sample by sample. A gap neither
        extends nor breaks a run; a first sample (no step) starts none."""
        cols = repeats if gaps is None else _union(repeats, gaps.columns, self.n_signals)
        carried = self._run[0]
        if self._many(cols):  # count every column, a row at a time
            # A gap has no step (0): "same" (the tolerance is not negative), and not counted; a
            # first sample starts no run.
            same = (step <= self._tolerance).astype(np.float32)
            counted: NDArray[np.float32] | None = None
            if gaps is not None:
                g = gaps.columns
                if masks is not None:
                    counted = masks[0]
                else:
                    counted = np.ones((n, self.n_signals), np.float32)
                    counted[:, g] = gaps.valid
                if gaps.no_step.any():
                    same[:, g] *= ~gaps.no_step
            runs_all = np.empty((n, self.n_signals), np.float32)
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
        scores = np.empty((n, cols.size), np.float32)
        if cols.size:
            same_sub = step[:, cols] <= self._tolerance[cols]
            counted_sub = np.ones((n, cols.size), np.float32)
            if gaps is not None:  # as above: a gap's step is 0, so it is already "same"
                where = np.searchsorted(cols, gaps.columns)
                same_sub[:, where] &= ~gaps.no_step
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

    def _follow_mean(self, z: F32, n: int, position: int, gaps: Gaps | None, masks: tuple[F32, F32, F32] | None) -> F32:
        """Residuals against the mean as the EWMA moves it through the period: ``m_j = m +
        alpha * sum(clip(z_i), i < j)`` over the period's earlier samples, with ``z`` (against
        the mean as the period began) winsorised at 3 s. The period's sum of clipped residuals
        is ``pending``; for a warming signal (no clipping) the plain sum, and ``m`` stays put."""
        clipped, running, d = self._clipped[:n], self._running[:n], self._d[:n]
        np.minimum(z, self._hi, out=clipped)
        np.maximum(clipped, self._lo, out=clipped)
        if masks is not None:
            clipped *= masks[0]
        elif gaps is not None:
            clipped[:, gaps.columns] = np.where(gaps.valid, clipped[:, gaps.columns], 0.0)
        running[0] = clipped[0]
        for t in range(1, n):  # np.cumsum along the sample axis is ~20 times slower than this
            np.add(running[t - 1], clipped[t], out=running[t])
        shift = self._shift[:n]
        shift[0] = self._pending
        if n > 1 and position:  # earlier chunks of this period are in ``pending``
            np.add(running[: n - 1], self._pending, out=shift[1:])
        elif n > 1:
            shift[1:] = running[: n - 1]
        shift *= self._alpha_warm
        np.subtract(z, shift, out=d)
        self._pending += running[n - 1]
        return d

    def _level(self, d: F32, n: int, gaps: Gaps | None) -> F32:
        """Level scores; the period's winsorised residuals for the mean at its end (a warming
        signal: also their squares and count); the variance per sample, in closed form.
        Returns each column's largest level score (CUSUM clips only where that allows it)."""
        level_n, clipped = self._part["level"][:n], self._clipped[:n]
        np.abs(d, out=level_n)
        level_n *= self._inv_level
        widest = self._widest
        np.maximum.reduce(level_n, axis=0, out=widest)
        ones = self._ones[:n]
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
            later = gaps.valid.astype(np.intp)  # valid samples from each row to the chunk's end
            for t in range(n - 2, -1, -1):  # (np.cumsum along the sample axis is far slower)
                later[t] += later[t + 1]
            if self._var_weights.ndim == 1:  # one rate for all: q^j from a table
                decay = self._decay[later]
                var[cols] = before * decay[0] + (clipped[:, cols] * decay).sum(axis=0) * self._b[0]
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
        if self._many(repeats):
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
            self._on, self._on_h = on, (self._h * on).astype(np.float32)
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


def supports(detectors: list[RowDetector]) -> str | None:
    """Why the fused kernel cannot score ``detectors`` (None when it can: the default set)."""
    kinds = [type(d) for d in detectors]
    wanted = {Cusum, EwmaLevel, Spike, Stuck}
    if len(set(kinds)) != len(kinds) or set(kinds) - {OutOfRange} != wanted:
        names = sorted(d.name for d in detectors)
        return f"the set {names} is not the default set (level, spike, cusum, stuck and range)"
    return None


def fused_set(detectors: list[RowDetector]) -> tuple[FusedDefault | None, str]:
    """The fused kernel for a set's ``detectors``, or None and the reason it does not apply."""
    why = supports(detectors)
    if why is not None:
        return None, why
    by_kind = {type(d): d for d in detectors}
    cusum, level, spike, stuck = by_kind[Cusum], by_kind[EwmaLevel], by_kind[Spike], by_kind[Stuck]
    limits = by_kind.get(OutOfRange)
    assert isinstance(cusum, Cusum)
    assert isinstance(level, EwmaLevel)
    assert isinstance(spike, Spike)
    assert isinstance(stuck, Stuck)
    assert limits is None or isinstance(limits, OutOfRange)
    return FusedDefault([d.name for d in detectors], level, spike, cusum, stuck, limits), ""


__all__ = ["PERIOD", "FusedDefault", "fused_set", "supports"]
