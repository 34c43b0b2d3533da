"""Whether a signal's abnormal condition lasts: what keeps an alarm active until the process is normal.

An alarm means "this signal is abnormal now" (ISA-18.2, IEC 62682: an alarm stays active while
its abnormal condition lasts). The detectors say when a signal *becomes* abnormal; a model that
goes on learning would then take the new level for normal within a hundred samples, and the alarm
would clear while the valve is still half closed. So while a signal is in alarm its forecast model
is held (:attr:`~analytics.detectors.forecast.ForecastModel.held`: its level and cycle learn nothing), and this
module measures, chunk by chunk of the row clock, how far the signal is from that held normal:

* **level**: the chunk's mean (on a known cycle, less the cycle's shape: the level the cycle
  rides on; with only a day profile, its residual against the profile), in sds of a normal
  chunk's mean;
* **spread**: the chunk's mean squared short-term residual against the slowly learnt scale (about
  1 in normal operation; 4 when the noise sd has doubled).

Both are smoothed over chunks (EWMA, ``rate`` per chunk of 8 samples). The condition lasts while
``|level| > level_limit`` or ``spread > spread_limit``; the alarm ends ``off_samples`` samples
after it stopped lasting and the detectors' score fell below ``off_below``
(:class:`~analytics.alarms.Alarms`).

A level that stays is a new normal when the machine changed state (each state keeps its own
normal), when the operator accepts it (:meth:`analytics.anomaly.AnomalyScorer.accept`), or after
``accept_after`` samples in alarm (:class:`~analytics.anomaly.AnomalySettings`): then the signal
learns its normal afresh.

>>> import numpy as np
>>> rng = np.random.default_rng(2)
>>> c = Condition(2)
>>> for _ in range(100):
...     c.observe(rng.normal(10.0, 0.3, 2), np.ones(2), 8, np.zeros(2, bool))
>>> for _ in range(8):                 # signal 0 in alarm, 3 sd higher
...     c.observe(np.array([10.9, 10.0]), np.ones(2), 8, np.array([True, False]))
>>> c.lasting().tolist()
[True, False]
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from edge_agent.analytics.detectors.season import PERIOD

F64 = NDArray[np.float64]

#: Chunks of normal history after which a signal's normal is known well (2,048 samples: a slow
#: cycle's period seen twice): its spreads then learn over the whole history, and a lasting
#: departure may start an alarm.
KNOWN_WELL = 256
#: The largest step of a chunk's mean from the level now, in normal sds, for a level under a
#: cycle's shape (see :meth:`Condition.observe`).
SHAPED_STEP = 4.0


class Condition:
    """Per signal: a fast and a slow mean of its deseasonalised chunk means, and its spread.

    State: a few arrays per signal; owned by the scorer's thread.
    """

    def __init__(
        self,
        n_signals: int,
        fast: float = 0.25,
        slow: float = 1.0 / 128.0,
        level_limit: float = 2.0,
        spread_limit: float = 3.0,
        warm_chunks: float | F64 = 32.0,
        far_level: float = 3.0,
    ) -> None:
        self.fast_rate, self.slow_rate = fast, slow
        #: Rate per chunk below which the normal spreads of a signal without a cycle, known well,
        #: never learn (they are running means of its normal chunks until then: 8,192 samples).
        self.spread_rate = slow / 8.0
        self.level_limit, self.spread_limit = level_limit, spread_limit
        self.far_level = far_level
        #: Per signal: chunks learnt before its normal is known.
        self.warm_chunks = np.broadcast_to(np.asarray(warm_chunks, np.float64), (n_signals,)).copy()
        #: EWMA of the chunk means (rate ``fast`` per chunk): what the signal does now.
        self.fast = np.zeros(n_signals)
        #: EWMA of the chunk means (rate ``slow``), learnt only while the signal is not held: its normal.
        self.ref = np.zeros(n_signals)
        #: EWMA of ``(fast - ref)²`` in normal operation.
        self.var = np.zeros(n_signals)
        #: EWMA of ``(chunk mean - ref)²`` in normal operation.
        self.var_chunk = np.zeros(n_signals)
        #: EWMA of the product of two normal chunks' ``chunk mean - ref`` in a row (their lag-1
        #: autocovariance), and the last normal chunk's (NaN: the last chunk was not learnt).
        self.lag1 = np.zeros(n_signals)
        self.last_off = np.full(n_signals, np.nan)
        #: Per signal, :meth:`_few_chunks` as of the last chunk.
        self.widen = np.ones(n_signals)
        #: Whole chunks in a row whose mean was within ``calm_limit`` sds of the normal, and not noisy.
        self.calm = np.zeros(n_signals, np.int64)
        self.calm_limit = 1.5
        #: Normal chunks learnt.
        self.chunks = np.zeros(n_signals)
        #: EWMA over chunks of the spread (mean squared short-term residual): what the noise is now.
        self.spread = np.zeros(n_signals)
        #: EWMA of the spread in normal operation (rate ``slow``, not learnt while held): normal noise.
        self.noise = np.zeros(n_signals)
        #: ``|level|`` at the end of the chunk before, and the EWMA of its change per chunk: a level
        #: that keeps coming closer is returning to normal.
        self.before = np.zeros(n_signals)
        self.approach = np.zeros(n_signals)
        #: Whole chunks in a row that ended with the smoothed level at least ``far_level`` sds from
        #: normal: a departure that lasts.
        self.far = np.zeros(n_signals, np.int64)
        #: The normal a signal had before it accepted a new one (NaN: none): a return to it is normal.
        self.former = np.full(n_signals, np.nan)
        #: Chunks in a row whose step was bounded (see :meth:`observe`), signed by its direction.
        self.pushed = np.zeros(n_signals, np.int64)
        #: Whether each signal's means have a seasonal part taken off (a change relearns the normal),
        #: and whether that part is a cycle's shape alone (the means are then levels, not residuals).
        self.seasonal = np.zeros(n_signals, bool)
        self.shaped = np.zeros(n_signals, bool)

    @property
    def seen(self) -> NDArray[np.bool_]:
        """Signals whose normal is known (``warm_chunks`` chunks learnt)."""
        known: NDArray[np.bool_] = self.chunks >= self.warm_chunks
        return known

    @property
    def known_well(self) -> NDArray[np.bool_]:
        """Signals with ``KNOWN_WELL`` chunks of normal history."""
        known: NDArray[np.bool_] = self.chunks >= KNOWN_WELL
        return known

    @property
    def residual(self) -> NDArray[np.bool_]:
        """Signals whose means are residuals against a seasonal memory (the day profile), not levels."""
        residual: NDArray[np.bool_] = self.seasonal & ~self.shaped
        return residual

    @property
    def level(self) -> F64:
        """Per signal: how far what it does now is from its normal, in normal sds (0 while unknown)."""
        floor = 1e-12 * self.ref * self.ref + 1e-30
        var = np.maximum(self.var, floor) * self.widen
        level: F64 = np.where(self.seen, (self.fast - self.ref) / np.sqrt(var), 0.0)
        return level

    def _few_chunks(self) -> F64:
        """Per signal, the factor by which its level's variance, measured around a normal learnt
        from the same few chunks, errs low (1: none).

        A signal that wanders (its chunk means correlated over many chunks) has shown only part of
        its range in a short history, and its normal moved with it: the squares around a mean of N
        chunks whose integrated autocorrelation time is τ chunks average ``(1 - τ/N)`` of the true
        variance. The excess over independent chunks (``τ - 1 = 2ρ / (1 - ρ)``, ρ the chunk means'
        lag-1 autocorrelation in normal operation) is corrected, at most fourfold. ρ measured
        around a mean of the same N chunks errs low by about ``(1 + 4ρ) / N`` (Kendall's bias of
        the lag-1 autocorrelation), which is added back. Chunk means without a cycle only: the
        residual against a learnt cycle repeats with it, and its lag-1 autocorrelation says
        nothing of how much of its range a history has seen.
        """
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = np.clip(self.lag1 / self.var_chunk, 0.0, 0.99)
        rho = np.nan_to_num(rho, nan=0.0)
        window = np.maximum(np.minimum(self.chunks, 2.0 / self.slow_rate - 1.0), 1.0)
        rho = np.where(rho > 0.0, np.minimum(rho + (1.0 + 4.0 * rho) / window, 0.99), 0.0)
        excess = 2.0 * rho / (1.0 - rho)
        factor: F64 = np.where(self.residual, 1.0, 1.0 / (1.0 - np.minimum(excess / window, 0.75)))
        return factor

    def observe(
        self,
        mean: F64,
        spread: F64,
        rows: int,
        held: NDArray[np.bool_],
        seasonal: NDArray[np.bool_] | None = None,
        plain: F64 | None = None,
        shaped: NDArray[np.bool_] | None = None,
    ) -> None:
        """One chunk's (or ``rows`` rows of one chunk's) means and spreads; NaN leaves a signal as it is.

        ``held`` signals (in alarm) do not learn their normal. ``seasonal`` marks the signals whose
        means have a seasonal part taken off: when the model finds (or loses) a cycle, a signal's
        normal spread changes, and it is learnt afresh (``plain`` is the chunk's mean without the
        seasonal part taken off).
        """
        chunks = rows / PERIOD
        if seasonal is not None and plain is not None:
            self._season_changes(mean, plain, seasonal, held, np.zeros_like(seasonal) if shaped is None else shaped)
        seen = ~np.isnan(mean)
        first = seen & (self.chunks == 0) & ~held
        self.fast[first] = self.ref[first] = mean[first]
        fast_weight = 1.0 - (1.0 - self.fast_rate) ** chunks
        step = mean - self.fast
        if self.shaped.any():
            # Against a cycle's shape, a sharp feature of the cycle that comes a little early or
            # late leaves a few chunks far off on either side of it: a chunk moves the level by at
            # most ``SHAPED_STEP`` normal sds, twice that if the chunk before was bounded the same
            # way, and so on (a shift of 1,000 sds comes within 4 sds of the level in 27 chunks,
            # not about 1,000).
            sd = np.where(self.shaped & self.seen, np.sqrt(self.var * self.widen), np.inf)
            with np.errstate(invalid="ignore"):
                sign = np.where(step > SHAPED_STEP * sd, 1, np.where(step < -SHAPED_STEP * sd, -1, 0))
            same = (sign != 0) & (np.sign(self.pushed) == sign)
            room = SHAPED_STEP * np.exp2(np.minimum(np.abs(np.where(same, self.pushed, 0)), 60))
            self.pushed = np.where(seen, np.where(same, self.pushed + sign, sign), self.pushed)
            with np.errstate(invalid="ignore"):
                step = np.clip(step, -room * sd, room * sd)
        self.fast[seen] += fast_weight * step[seen]
        with np.errstate(invalid="ignore"):
            back = np.abs(self.fast - self.former) < self.level_limit * np.sqrt(self.var)
        if back.any():  # returned to the normal it had before the last accepted one
            self.ref[back], self.former[back] = self.former[back], np.nan
        if rows == PERIOD:
            floor = 1e-12 * self.ref * self.ref + 1e-30
            now = np.abs(mean - self.ref) / np.sqrt(np.maximum(self.var_chunk, floor))
            with np.errstate(invalid="ignore"):
                quiet = (now < self.calm_limit) & ~(spread > self.spread_limit * self.noise)
            self.calm = np.where(seen, np.where(quiet, self.calm + 1, 0), self.calm)
        normal = seen & ~held
        learn = np.flatnonzero(normal)
        self.last_off[~normal] = np.nan
        if learn.shape[0]:
            self._learn_normal(learn, mean, chunks)
        self.widen = self._few_chunks()
        if rows == PERIOD:
            now = np.abs(self.level)
            self.approach += self.fast_rate * (now - self.before - self.approach)
            self.before = now
            self.far = np.where(now >= self.far_level, self.far + 1, 0)
        known = ~np.isnan(spread)
        fresh = known & (self.noise == 0)
        self.spread[fresh] = self.noise[fresh] = spread[fresh]
        self.spread[known] += fast_weight * (spread[known] - self.spread[known])
        learn = np.flatnonzero(known & ~held & ~fresh)
        if learn.shape[0]:
            done = self.chunks[learn]
            rate = np.maximum(1.0 - (1.0 - self.slow_rate) ** chunks, chunks / (done + chunks))
            noise = self.noise[learn]
            self.noise[learn] = noise + rate * (np.minimum(spread[learn], 2.5 * noise) - noise)

    def _learn_normal(self, learn: NDArray[np.intp], mean: F64, chunks: float) -> None:
        """Signals ``learn`` (not held) learn their normal from a chunk's mean (``chunks`` of a chunk)."""
        done = self.chunks[learn]
        running = chunks / (done + chunks)
        rate = np.maximum(1.0 - (1.0 - self.slow_rate) ** chunks, running)
        gap = self.fast[learn] - self.ref[learn]
        var = self.var[learn]
        # Winsorised once warm: a fault the detectors have not (yet) alarmed on moves the
        # normal by a bounded step per chunk, and its spread hardly.
        warm = done >= self.warm_chunks[learn]
        # Once the normal is known well, the spreads learn over the whole normal history (a
        # running mean, at least ``spread_rate`` per chunk): a drift the reference follows would
        # otherwise teach them its own lag and hide itself. A residual against a learnt cycle
        # keeps the reference's rate: the cycle's shape, and the residual's spread with it, move.
        slow = (done >= KNOWN_WELL) & ~self.residual[learn]
        spread_rate = np.where(slow, np.maximum(1.0 - (1.0 - self.spread_rate) ** chunks, running), rate)
        square = np.where(warm, np.minimum(gap * gap, 4.0 * var), gap * gap)
        self.var[learn] = var + spread_rate * (square - var)
        off = mean[learn] - self.ref[learn]
        var_chunk = self.var_chunk[learn]
        square = np.where(warm, np.minimum(off * off, 9.0 * var_chunk), off * off)
        self.var_chunk[learn] = var_chunk + spread_rate * (square - var_chunk)
        before = self.last_off[learn]
        pair = ~np.isnan(before)
        if pair.any():
            both = learn[pair]
            product = off[pair] * before[pair]
            most = np.where(warm[pair], 9.0 * var_chunk[pair], np.inf)
            lag1 = self.lag1[both]
            self.lag1[both] = lag1 + spread_rate[pair] * (np.clip(product, -most, most) - lag1)
        self.last_off[learn] = off
        bound = np.where(warm, np.sqrt(var), np.inf)
        self.ref[learn] += rate * np.clip(mean[learn] - self.ref[learn], -bound, bound)
        self.chunks[learn] = done + chunks

    def _season_changes(
        self, mean: F64, plain: F64, seasonal: NDArray[np.bool_], held: NDArray[np.bool_], shaped: NDArray[np.bool_]
    ) -> None:
        """Signals whose level changed meaning (a cycle found or lost): learnt afresh, or while in
        alarm, moved onto the new meaning (their normal and now shift by the chunk's difference)."""
        changed = ((seasonal != self.seasonal) | (shaped != self.shaped)) & ~np.isnan(mean)
        if not changed.any():
            return
        # To or from a level under a cycle's shape while in alarm: no chunk of the old meaning to
        # measure the new one against, so the normal is learnt afresh once the alarm has ended.
        afresh = changed & (~held | (shaped != self.shaped))
        moved = np.flatnonzero(changed & ~afresh)
        fresh = np.flatnonzero(afresh)
        if fresh.shape[0]:
            self.reset(fresh)
        if moved.shape[0]:
            # Found: this chunk's residual against its plain mean. Lost: the residual is gone, so
            # what the signal does now keeps its distance to normal.
            delta = np.where(seasonal[moved], mean[moved] - plain[moved], plain[moved] - self.fast[moved])
            self.fast[moved] += delta
            self.ref[moved] += delta
            self.former[moved] += delta
        self.seasonal[changed] = seasonal[changed]
        self.shaped[changed] = shaped[changed]

    @property
    def returning(self) -> NDArray[np.bool_]:
        """Per signal: its level came closer to normal over the last chunk (a transition settling)."""
        closer: NDArray[np.bool_] = self.approach < 0
        return closer

    def lasting(self) -> NDArray[np.bool_]:
        """Per signal: the abnormal condition lasts: far from its normal or noisier than normal, and
        not on its way back with two whole chunks in a row within ``calm_limit`` sds (after a large
        excursion the smoothed level takes a while to come down; the chunks say at once that it is
        over; a drift that keeps moving away is not over however its chunks scatter)."""
        far = (np.abs(self.level) > self.level_limit) | (self.spread > self.spread_limit * self.noise)
        lasting: NDArray[np.bool_] = far & ~((self.calm >= 2) & self.returning)
        return lasting

    def accept(self, signals: NDArray[np.intp]) -> None:
        """What ``signals`` do now is their normal: the level and the noise of now become the reference
        (a return to the former normal later is normal too)."""
        self.former[signals] = self.ref[signals]
        self.ref[signals] = self.fast[signals]
        self.noise[signals] = np.maximum(self.noise[signals], self.spread[signals])
        self.calm[signals] = self.far[signals] = self.pushed[signals] = 0
        self.last_off[signals] = np.nan  # measured against the normal before

    #: The per-signal arrays a machine state keeps (each state has its own normal).
    STATE = (
        *("fast", "ref", "var", "var_chunk", "lag1", "chunks", "spread", "noise"),
        *("former", "seasonal", "shaped", "calm", "before", "approach", "far", "pushed"),
    )

    def save(self, signals: NDArray[np.intp]) -> dict[str, NDArray[np.generic]]:
        """The state of ``signals``, to be put back with :meth:`load` (a machine state's normal)."""
        return {name: getattr(self, name)[signals].copy() for name in self.STATE}

    def load(self, signals: NDArray[np.intp], saved: dict[str, NDArray[np.generic]]) -> None:
        for name in self.STATE:
            getattr(self, name)[signals] = saved[name]
        self.last_off[signals] = np.nan  # the chunk before was another state's
        self.widen = self._few_chunks()

    def reset(self, signals: NDArray[np.intp]) -> None:
        for a in (self.fast, self.ref, self.var, self.var_chunk, self.lag1, self.chunks, self.spread, self.noise):
            a[signals] = 0.0
        self.last_off[signals] = np.nan
        self.widen[signals] = 1.0
        self.before[signals] = self.approach[signals] = 0.0
        self.former[signals] = np.nan
        self.calm[signals] = self.far[signals] = self.pushed[signals] = 0
        self.seasonal[signals] = self.shaped[signals] = False
