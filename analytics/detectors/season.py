"""Seasonality: what a signal usually does at this time of day, and at this point of its own cycle.

Two predictors of the same sample, both vectorised over signals (``[rows, signals]`` chunks):

* :class:`DayProfile`: an EWMA of the signal per bin of the day (``bins`` bins, UTC time of day),
  learnt at ``rate`` per visit of a bin, whatever the sampling rate. It predicts once the signal
  has been seen for ``after_days`` days.
* :class:`CycleLearner`: machine cycles, shifts, batches. The means of consecutive chunks go
  into a ring (one value per ``PERIOD`` samples); now and then the ring's autocorrelation
  (FFT) gives each signal's period: the first lag after the autocorrelation has dipped below 0
  that comes within 90 % of its highest peak above 0.5 (a step or a trend never dips, so it is
  never taken for a cycle). The prediction is the median of the ring's values one, two and
  three periods back (linearly interpolated): an anomaly one cycle ago does not echo.

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

from edge_agent.analytics.detectors.ring import Ring

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

    def push(self, chunk: F64, gappy: bool = True) -> None:
        """The next chunk of ``PERIOD`` rows (a shorter one is not pushed)."""
        if chunk.shape[0] != PERIOD:
            return
        if gappy:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a column without samples: NaN
                means = np.nanmean(chunk, axis=0)
        else:
            means = np.add.reduce(chunk, axis=0) * (1.0 / PERIOD)
        self.ring.put(self.pushed % self.size, means)
        self.pushed += 1
        if self.pushed % 8 == 0:
            due = np.flatnonzero(self.next_at <= self.pushed)
            if due.shape[0]:
                self._refresh(due)

    #: The longest wait between two looks at a signal's period, in chunks (4,096 rows): the FFT
    #: is the costliest step of the model, so a signal whose answer stays the same is looked at
    #: less and less often; a new or reset signal is looked at every ``every`` chunks.
    MAX_WAIT = 512

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
        r -= np.outer(t, (t @ r) / (t @ t))  # a trend is not a cycle
        f = np.fft.rfft(r, n=2 * count, axis=0)
        ac = np.fft.irfft(f * np.conj(f), axis=0)[:count]
        ac /= np.maximum(ac[0], 1e-300)
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
        b0 = np.clip(best, 1, count - 2)
        below_, at, above = ac[b0 - 1, k], ac[b0, k], ac[b0 + 1, k]
        curve = below_ - 2 * at + above
        frac = np.where(np.abs(curve) > 1e-12, 0.5 * (below_ - above) / np.where(curve == 0, 1, curve), 0.0)
        found = complete & (value > self.min_corr) & (best >= 3)
        period = np.where(found, (best + np.clip(frac, -0.5, 0.5)) * PERIOD, 0.0)
        lost = complete & (value < 0.3)
        old = self.period[cols]
        # A period within 5 % of the one in use is the same cycle: keep it (no jitter).
        same = (old > 0) & (np.abs(period - old) <= 0.05 * old)
        new = np.where(found & ~same, period, np.where(lost, 0.0, old))
        self.period[cols] = new
        # Looked at often while the answer changes, or none is found in a ring still filling.
        eager = ((new > 0) != (old > 0)) | ((new > 0) & ~same) | ((new == 0) & (self.pushed < self.size))
        self.wait[cols] = np.where(eager, self.every, np.minimum(self.wait[cols] * 2, self.MAX_WAIT))
        self.next_at[cols] = self.pushed + self.wait[cols]

    def predict(self, rows: int, first_row: int) -> tuple[F64, NDArray[np.bool_]]:
        """The prediction at the first and the last of ``rows`` rows from ``first_row`` of the row
        clock, per signal (linear in between), and which signals have one.

        Within a chunk the ring's piecewise-linear curve is taken as one straight segment: the
        ring's own resolution is a chunk.
        """
        at = np.full((2, self.n_signals), np.nan)
        cols = np.flatnonzero(self.period > 0)
        if cols.shape[0] == 0:
            return at, np.zeros(self.n_signals, bool)
        period = self.period[cols]
        oldest = max(self.pushed - self.size, 0)
        guesses = []
        for back in (1, 2, 3):
            # ring value k covers rows [k*PERIOD, (k+1)*PERIOD): its centre is k*PERIOD + 3.5
            u = (first_row + np.array([[0.0], [rows - 1.0]]) - back * period - (PERIOD - 1) / 2) / PERIOD
            k0 = np.floor(u)
            frac = u - k0
            inside = (k0 >= oldest) & (k0 + 1 <= self.pushed - 1)
            k0i = k0.astype(np.int64) % self.size
            value = (1 - frac) * self.ring.at(k0i, cols) + frac * self.ring.at((k0i + 1) % self.size, cols)
            value[~inside] = np.nan
            guesses.append(value)
        a, b, c = guesses
        # The median of three without sorting; fmin and fmax skip a missing guess.
        low, high = np.fmin(a, b), np.fmax(a, b)
        at[:, cols] = np.fmax(low, np.fmin(high, c))
        known = ~np.isnan(at).any(axis=0)
        return at, known

    def reset(self, signals: NDArray[np.intp]) -> None:
        self.ring.clear(signals)
        self.period[signals] = 0.0
        self.wait[signals] = self.every
        self.next_at[signals] = self.pushed + 64
