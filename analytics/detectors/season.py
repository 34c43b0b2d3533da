"""Seasonality: what a signal usually does at this time of day, and at this point of its own cycle.

Two predictors of the same sample, both vectorised over signals (``[rows, signals]`` chunks):

* :class:`DayProfile`: an EWMA of the signal per bin of the day (``bins`` bins, UTC time of day),
  learnt at ``rate`` per visit of a bin, whatever the sampling rate. It predicts once the signal
  has been seen for ``after_days`` days.
* :class:`CycleLearner`: machine cycles, shifts, batches. The means of consecutive chunks go
  into a ring (one value per ``PERIOD`` samples); now and then the ring's autocorrelation
  (FFT) gives each signal's period: the first lag after the autocorrelation has dipped below 0
  that comes within 90 % of its highest peak above 0.5 (a step or a trend never dips, so it is
  never taken for a cycle), its fraction of a chunk read where the mean squared difference of
  the ring and itself a period (or two) back is least. The prediction is the median of the
  ring's values one, two and three periods back (linearly interpolated): an anomaly one cycle
  ago does not echo. Beside each value the ring keeps the mean over the period around it, the
  level the cycle rode on then: the prediction less that base level is the cycle's shape alone.

Units: ``period`` is in samples; times are UTC nanoseconds.

>>> import numpy as np
>>> t = np.arange(4096)
>>> x = np.sin(2 * np.pi * t / 200)[:, None] + np.random.default_rng(1).normal(0, 0.1, (4096, 1))
>>> cycles = CycleLearner(1)
>>> for start in range(0, 4096, 8):
...     cycles.push(x[start:start + 8])
>>> abs(float(cycles.period[0]) - 200) < 8   # within one chunk of 8 samples
True
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import NDArray

from edge_agent.analytics.detectors.ring import MISSING, Ring

DAY_NS = 86_400 * 1_000_000_000
#: Samples per ring value (the row clock's chunk).
PERIOD = 8

F64 = NDArray[np.float64]


class DayProfile:
    """The usual value per bin of the UTC day (float32 table ``[bins, signals]``, made on first use)."""

    def __init__(self, n_signals: int, bins: int = 288, rate: float = 0.3, after_days: float = 2.0) -> None:
        self.n_signals, self.bins, self.rate, self.after_ns = n_signals, bins, rate, int(after_days * DAY_NS)
        self.table: NDArray[np.float32] | None = None
        self.first_ns = np.full(n_signals, -1, np.int64)
        self.interval_ns = np.zeros(n_signals)  # EWMA of the sampling interval
        self.last_ns = np.full(n_signals, -1, np.int64)
        self._cols = np.arange(n_signals)

    def predict(self, ts: NDArray[np.int64], valid: NDArray[np.bool_]) -> tuple[F64, NDArray[np.intp]]:
        """Predictions ``[rows, signals]`` (NaN where none yet) and the bin of every sample."""
        bins = (ts % DAY_NS * self.bins // DAY_NS).astype(np.intp)
        if self.table is None:
            self._watch(ts, valid)
            return np.full(ts.shape, np.nan), bins
        pred = self.table[bins, self._cols].astype(np.float64)
        active = (ts - self.first_ns >= self.after_ns) & (self.first_ns >= 0)
        pred[~active] = np.nan
        return pred, bins

    def _watch(self, ts: NDArray[np.int64], valid: NDArray[np.bool_]) -> None:
        seen = valid.any(axis=0)
        first = np.where(valid, ts, np.iinfo(np.int64).max).min(axis=0)
        fresh = seen & (self.first_ns < 0)
        self.first_ns[fresh] = first[fresh]
        # The table costs bins x 4 bytes a signal: made once some signal has run for most of a day.
        if (self.first_ns >= 0).any() and int(ts.max() - self.first_ns[self.first_ns >= 0].min()) > DAY_NS // 2:
            self.table = np.full((self.bins, self.n_signals), np.nan, np.float32)

    def learn(
        self, x: F64, ts: NDArray[np.int64], valid: NDArray[np.bool_], bins: NDArray[np.intp], resid: F64
    ) -> None:
        """Move each visited bin toward its samples (``resid`` = winsorised sample - prediction)."""
        last = np.where(valid, ts, -1).max(axis=0)
        gap = np.where((self.last_ns >= 0) & (last > self.last_ns), last - self.last_ns, 0)
        counts = valid.sum(axis=0)
        step = np.where(counts > 0, gap / np.maximum(counts, 1), 0.0)
        seen = step > 0
        self.interval_ns[seen] = np.where(
            self.interval_ns[seen] > 0, 0.9 * self.interval_ns[seen] + 0.1 * step[seen], step[seen]
        )
        self.last_ns = np.where(counts > 0, last, self.last_ns)
        if self.table is None:
            return
        width = DAY_NS / self.bins
        per_visit = np.maximum(width / np.maximum(self.interval_ns, 1.0), 1.0)
        rate = self.rate / per_visit
        for i in range(x.shape[0]):
            row_valid = valid[i]
            cols = self._cols[row_valid]
            b = bins[i, row_valid]
            old = self.table[b, cols]
            new = np.where(np.isnan(old), x[i, row_valid], old + rate[row_valid] * np.nan_to_num(resid[i, row_valid]))
            self.table[b, cols] = new

    def reset(self, signals: NDArray[np.intp]) -> None:
        self.first_ns[signals] = -1
        if self.table is not None:
            self.table[:, signals] = np.nan


class CycleLearner:
    """A ring of chunk means per signal; the period of each signal's cycle (0 = none found)."""

    def __init__(self, n_signals: int, ring: int = 256, every: int = 32, min_corr: float = 0.5) -> None:
        self.n_signals, self.size, self.every, self.min_corr = n_signals, ring, every, min_corr
        self.ring = Ring(ring, n_signals)
        self.pushed = 0  # chunks pushed so far
        self.period = np.zeros(n_signals)
        #: When each signal's period is looked for next (in chunks pushed), and the wait after that:
        #: it doubles from ``every`` up to ``MAX_WAIT`` while the answer stays the same.
        self.next_at = np.full(n_signals, 64, np.int64)
        self.wait = np.full(n_signals, every, np.int64)
        #: Per signal with a cycle: the sum and the count of its chunk means over the last whole
        #: chunks of one period (see :meth:`_slide`).
        self._sum = np.zeros(n_signals)
        self._count = np.zeros(n_signals)
        #: ... and how many whole chunks those are (within a chunk of the period's: see
        #: :meth:`_refresh_block`).
        self._whole = np.zeros(n_signals, np.int64)

    def push(self, chunk: F64, gappy: bool = True, held: NDArray[np.bool_] | None = None) -> None:
        """The next chunk of ``PERIOD`` rows (a shorter one is not pushed). The period of a ``held``
        signal (in alarm) is not looked for: it is part of its normal, which an alarm holds."""
        if chunk.shape[0] != PERIOD:
            return
        if gappy:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a column without samples: NaN
                means = np.nanmean(chunk, axis=0)
        else:
            means = np.add.reduce(chunk, axis=0) * (1.0 / PERIOD)
        slot = self.pushed % self.size
        widened = self.ring.put(slot, means)
        self.pushed += 1
        cols = np.flatnonzero(self.period > 0)
        if cols.shape[0]:
            self._slide(cols, slot)
            recoded = widened[self.period[widened] > 0]
            if recoded.shape[0]:  # their stored means moved by a fraction of a code: summed afresh
                self._bases(recoded)
        if self.pushed % 8 == 0:
            ready = self.next_at <= self.pushed
            due = np.flatnonzero(ready if held is None else ready & ~held)
            if due.shape[0]:
                self._refresh(due)

    #: The longest wait between two looks at a signal's period, in chunks (4,096 rows): the FFT
    #: is the costliest step of the model, so a signal whose answer stays the same is looked at
    #: less and less often; a new or reset signal is looked at every ``every`` chunks.
    MAX_WAIT = 512

    #: A new estimate of a period within this fraction of the one in use keeps the one in use.
    SAME = 0.002

    #: Signals whose period is looked for in one FFT: bounds its memory (about 40 kB per signal
    #: at the full ring) when many signals are due at once.
    BLOCK = 2048

    def _refresh(self, cols: NDArray[np.intp]) -> None:
        """Look for the period of the signals ``cols``, ``BLOCK`` at a time."""
        for start in range(0, cols.shape[0], self.BLOCK):
            self._refresh_block(cols[start : start + self.BLOCK])

    def _refresh_block(self, cols: NDArray[np.intp]) -> None:
        count = min(self.pushed, self.size)
        order = (np.arange(self.pushed - count, self.pushed)) % self.size
        r = self.ring.rows(order, cols)
        complete = ~np.isnan(r).any(axis=0)
        r = np.nan_to_num(r - np.nanmean(np.where(np.isnan(r), 0.0, r), axis=0))
        t = np.arange(count) - (count - 1) / 2
        slope = (t @ r) / (t @ t)
        r -= np.outer(t, slope)  # a trend is not a cycle
        f = np.fft.rfft(r, n=2 * count, axis=0)
        raw = np.fft.irfft(f * np.conj(f), axis=0)[:count]
        ac = raw / np.maximum(raw[0], 1e-300)
        ac *= (count / np.maximum(count - np.arange(count), 1))[:, None]  # a long lag has fewer terms
        half = count // 2
        below = ac[1:half] < 0
        first_dip = np.where(below.any(axis=0), np.argmax(below, axis=0) + 1, half)
        lags = np.arange(count)[:, None]
        masked = np.where((lags >= first_dip) & (lags < half), ac, -np.inf)
        top = masked.max(axis=0)
        peak = (masked >= 0.9 * top) & (masked >= np.roll(masked, 1, axis=0)) & (masked >= np.roll(masked, -1, axis=0))
        best = np.where(peak.any(axis=0), np.argmax(peak, axis=0), np.argmax(masked, axis=0))
        k = np.arange(cols.shape[0])
        value = masked[best, k]
        found = complete & (value > self.min_corr) & (best >= 3)
        period = np.where(found, _lag_of_least_difference(r, raw, slope, best) * PERIOD, 0.0)
        lost = complete & (value < 0.3)
        old = self.period[cols]
        # A period within 5 % of the one in use is the same cycle, looked at less and less often;
        # within ``SAME`` of it, the one in use is kept (its base levels are worked out afresh on
        # every change). Beyond that, the new estimate is the better one: it saw more of the cycle.
        same = (old > 0) & (np.abs(period - old) <= 0.05 * old)
        keep = (old > 0) & (np.abs(period - old) <= self.SAME * old)
        new = np.where(found & ~keep, period, np.where(lost, 0.0, old))
        self.period[cols] = new
        # A new cycle, or one whose period moved by a chunk from the whole chunks its sums span:
        # its base levels are worked out afresh. A smaller move keeps the running sums (their
        # partial chunk weighs -0.5 to 1.5), and the base levels already stored stay (a period's
        # mean a fraction of a chunk wider or narrower).
        moved = np.abs(new / PERIOD - self._whole[cols] - 0.5) > 1.0
        changed = cols[(new > 0) & ((old == 0) | moved)]
        if changed.shape[0]:
            self._bases(changed)
        # Looked at often while the answer changes, or none is found in a ring still filling.
        eager = ((new > 0) != (old > 0)) | ((new > 0) & ~same) | ((new == 0) & (self.pushed < self.size))
        self.wait[cols] = np.where(eager, self.every, np.minimum(self.wait[cols] * 2, self.MAX_WAIT))
        self.next_at[cols] = self.pushed + self.wait[cols]

    def _slide(self, cols: NDArray[np.intp], slot: int) -> None:
        """Each signal's base level as of the chunk just pushed (in ``slot``): the mean of its chunk
        means over one period (``w = period / PERIOD`` chunks: the last whole ones, about
        ``floor(w)``, and what is left of ``w`` of the one before), centred ``(w - 1) / 2`` chunks
        back. A whole period of a cycle averages out: what is left is the level the cycle rides on.
        Missing where fewer than half the period's chunks were seen. Kept as running sums of the
        stored codes (integers: the sums stay exact; the mean of codes decodes to the mean of the
        values)."""
        width = self.period[cols] / PERIOD
        whole = self._whole[cols]
        back = self.pushed - 1 - whole
        new = self.ring.codes[slot, cols]
        old = self.ring.codes[back % self.size, cols]
        seen_new, seen_old = new != MISSING, (old != MISSING) & (back >= 0)
        self._sum[cols] += np.where(seen_new, new, 0.0) - np.where(seen_old, old, 0.0)  # float64: no int16 overflow
        self._count[cols] += seen_new.astype(np.float64) - seen_old.astype(np.float64)
        part = (width - whole) * seen_old
        total, count = self._sum[cols] + part * old.astype(np.float64), self._count[cols] + part
        with np.errstate(invalid="ignore", divide="ignore"):
            base = np.where((count >= whole / 2) & (back >= 0), total / count, np.nan)
        self.ring.put_bases(slot, cols, base)

    def _bases(self, cols: NDArray[np.intp]) -> None:
        """Every stored chunk's base level of ``cols`` (see :meth:`_slide`), worked out afresh from
        the ring (a new period, or stored values coded again), and the running sums."""
        for start in range(0, cols.shape[0], self.BLOCK):
            part = cols[start : start + self.BLOCK]
            count = min(self.pushed, self.size)
            order = np.arange(self.pushed - count, self.pushed) % self.size
            codes = self.ring.codes[np.ix_(order, part)]
            seen = codes != MISSING
            r = np.where(seen, codes, 0).astype(np.float64)
            sums = np.vstack([np.zeros((1, part.shape[0])), np.cumsum(r, axis=0)])
            counts = np.vstack([np.zeros((1, part.shape[0])), np.cumsum(seen, axis=0)])
            width = self.period[part] / PERIOD
            whole = np.floor(width).astype(np.int64)
            self._whole[part] = whole
            end = np.arange(1, count + 1)[:, None]
            k = np.arange(part.shape[0])
            begin = np.maximum(end - whole, 0)
            total, n = sums[end, k] - sums[begin, k], counts[end, k] - counts[begin, k]
            self._sum[part], self._count[part] = total[-1], n[-1]
            back = end - 1 - whole
            inside = back >= 0
            before = np.clip(back, 0, None)
            part_seen = (width - whole) * (seen[before, k] & inside)
            total = total + part_seen * r[before, k]
            n = n + part_seen
            # Chunks older than the ring's first lack the period before them.
            with np.errstate(invalid="ignore", divide="ignore"):
                base = np.where((n >= whole / 2) & inside, total / n, np.nan)
            self.ring.put_bases(order, part, base)

    def predict(self, rows: int, first_row: int) -> tuple[F64, F64, NDArray[np.bool_]]:
        """The prediction at the first and the last of ``rows`` rows from ``first_row`` of the row
        clock, per signal (linear in between), the base level it carries over those rows (one per
        signal), and which signals have one.

        The prediction is the median of the values one, two and three periods back; the base is
        the median of the base levels of those values (the level their cycle rode on: see
        :meth:`_slide`), NaN where none is known. The prediction less its base is the cycle's shape
        alone: a level that moves slowly under the cycle is not in it.

        Within a chunk the ring's piecewise-linear curve is taken as one straight segment: the
        ring's own resolution is a chunk. A base level changes little from one chunk to the next:
        the one nearest the middle of the rows is read.
        """
        at = np.full((2, self.n_signals), np.nan)
        base = np.full(self.n_signals, np.nan)
        cols = np.flatnonzero(self.period > 0)
        if cols.shape[0] == 0:
            return at, base, np.zeros(self.n_signals, bool)
        period = self.period[cols]
        centre = (period / PERIOD - 1.0) / 2.0  # chunks from a base's chunk back to its centre
        oldest = max(self.pushed - self.size, 0)
        guesses, levels = [], []
        for back in (1, 2, 3):
            # ring value k covers rows [k*PERIOD, (k+1)*PERIOD): its centre is k*PERIOD + 3.5
            u = (first_row + np.array([[0.0], [rows - 1.0]]) - back * period - (PERIOD - 1) / 2) / PERIOD
            guesses.append(self._between(u, cols, oldest))
            k = np.rint(0.5 * (u[0] + u[1]) + centre)
            level = self.ring.bases_at(k.astype(np.int64) % self.size, cols)
            level[(k < oldest) | (k > self.pushed - 1)] = np.nan
            levels.append(level)
        # The median of three without sorting; fmin and fmax skip a missing guess.
        a, b, c = guesses
        low, high = np.fmin(a, b), np.fmax(a, b)
        at[:, cols] = np.fmax(low, np.fmin(high, c))
        a, b, c = levels
        low, high = np.fmin(a, b), np.fmax(a, b)
        base[cols] = np.fmax(low, np.fmin(high, c))
        known = ~np.isnan(at).any(axis=0)
        return at, base, known

    def _between(self, u: F64, cols: NDArray[np.intp], oldest: int) -> F64:
        """Ring values at fractional positions ``u`` (in chunks pushed), linearly interpolated;
        NaN outside what the ring holds."""
        k0 = np.floor(u)
        frac = u - k0
        inside = (k0 >= oldest) & (k0 + 1 <= self.pushed - 1)
        k0i = k0.astype(np.int64) % self.size
        value: F64 = (1 - frac) * self.ring.at(k0i, cols) + frac * self.ring.at((k0i + 1) % self.size, cols)
        value[~inside] = np.nan
        return value

    def reset(self, signals: NDArray[np.intp]) -> None:
        self.ring.clear(signals)
        self.period[signals] = self._sum[signals] = self._count[signals] = 0.0
        self._whole[signals] = 0
        self.wait[signals] = self.every
        self.next_at[signals] = self.pushed + 64


def _lag_of_least_difference(r: F64, raw: F64, slope: F64, best: NDArray[np.intp]) -> F64:
    """Per column of ``r`` (``[count, cols]``, centred, its linear trend of ``slope`` per row taken
    off): the lag, to a fraction of a row, near ``best`` at which the mean squared difference of
    the column with its trend and itself that many rows back is least (``raw``: the autocovariance
    sums of ``r`` per lag). Read at twice ``best`` where the overlap still spans a period (the
    error halves), else at ``best``.

    The autocorrelation's peak leans toward shorter lags over a few periods (the partial energies
    of the two overlapping parts differ), and a trend fitted over a part of a period bends the
    cycle; the squared difference of the samples as they were counts neither. A period off by 1 %
    puts the prediction three periods back 3 % of a cycle out of phase.
    """
    count, n = r.shape
    k = np.arange(n)
    twice = 3 * best + 2 <= count
    around = np.where(twice, 2 * best, best)
    # The lags looked at: seven either side (the peak's lean), and one more for a neighbour.
    lags = np.clip(around[None] + np.arange(-8, 9)[:, None], 1, count - 2)
    # Sums of the first i rows are the running sums' row i - 1 (lags and overlaps are >= 1 here).
    energy = np.cumsum(np.square(r), axis=0)
    total = np.cumsum(r, axis=0)
    overlap = count - lags
    head = energy[overlap - 1, k]  # the earlier part's squares (rows 0 .. count - lag - 1)
    tail = energy[-1] - energy[lags - 1, k]  # the later part's (rows lag .. count - 1)
    # The mean step of ``r`` over each lag (the later part's mean less the earlier part's).
    step = (total[-1] - total[lags - 1, k] - total[overlap - 1, k]) / overlap
    gap = lags * slope
    diff = (head + tail - 2.0 * raw[lags, k]) / overlap + 2.0 * gap * step + gap * gap
    # The least of the lags, then a parabola through it and its two neighbours.
    at = np.argmin(diff[1:-1], axis=0) + 1
    low = lags[at, k]
    below, mid, above = diff[at - 1, k], diff[at, k], diff[at + 1, k]
    curve = below - 2.0 * mid + above
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(curve > 1e-300, 0.5 * (below - above) / curve, 0.0)
    lag: F64 = (low + np.clip(np.nan_to_num(frac), -0.5, 0.5)) / np.where(twice, 2.0, 1.0)
    return lag
