"""The forecast model the default detectors read: what each signal should be now, and how surprising it is.

Plant signals are autocorrelated (a temperature loop), cyclic (a machine cycle, the day) and
repeat themselves (a device slower than its poll). Scoring the distance to a slow mean flags all
of that; this model asks instead whether the sample is explained by a model of normal:

* **short term**: AR(2) around a slow mean ``m`` (rate ``alpha``), ``m + p1 (x1 - m) + p2 (x2 - m)``,
  where ``x1, x2`` are the last two samples and ``p1, p2`` solve the Yule-Walker equations of
  EWMA autocovariances (rate ``ar_alpha``), or the last value for a signal that moves in steps
  (whichever of the two has the smaller residual scale);
* **seasonal**: the day profile (:class:`~analytics.detectors.season.DayProfile`), once a signal
  has been seen for two days, and the signal's own cycle (:class:`~analytics.detectors.season.CycleLearner`).

Each predictor has its own scale (an EWMA of its squared residual, winsorised at ``clip`` scales,
rate ``scale_alpha``). The **surprise** of a sample is the smaller of its short-term and seasonal
``|x - prediction| / scale``, divided by the signal's own 99.9th percentile of surprise (tracked
in the log domain with steps of ``quantile_rate``): real signals have heavy tails, and 1 means "as
surprising as 1 sample in 1,000 has been for this signal".

The **long-term expectation** is the cycle's prediction, else the day profile's, else the slow
mean. Its residual is measured in units of its scale (rate ``long_alpha``: slow, so a drift is
not learnt as noise), inflated by how much further the residual's mean over a chunk wanders than
independent samples would (an autocorrelated signal wanders by itself); it feeds the shift
detector. The clipped inputs of the sums have their own running means taken off (bursty or
sparse signals leave them one), so that a sum moves only on a change.

Everything is vectorised over signals and computed per chunk of ``PERIOD`` (8) rows of the row
clock, with the parameters frozen within a chunk and learning at its end; the row clock makes
the scores independent of how a stream is cut into blocks. Learning is winsorised (a residual
counts for at most ``clip`` scales) and the quantile moves by bounded steps, so an anomaly is not
learnt into normal while it lasts. A NaN is a gap: it scores NaN and teaches nothing. The first
``grace`` samples of a signal teach the model only; the surprise and variance scores start once
``calibrate_after`` samples have calibrated them, the deviation sum after ``grace``, the shift sum
after ``shift_after`` (a cycle shows itself only over whole periods: until then a slow cycle looks
like a shift).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from edge_agent.analytics.detectors.base import Param, RowDetector, register
from edge_agent.analytics.detectors.season import PERIOD, CycleLearner, DayProfile

F64 = NDArray[np.float64]
#: A chunk's arrays: float32 on the hot path, float64 where precision needs it.
FA = NDArray[np.floating[Any]]
B = NDArray[np.bool_]

#: The penalty on the short-term predictor that is not the signal's better one: the ratio of a
#: white signal's step noise to its level noise, so that an outlier scores the same by either.
_OTHER = float(np.sqrt(2.0))

#: A sample that comes this many of its signal's usual intervals after the one before follows a
#: gap (a late poll, a missed reply): its short-term residual is measured against a scale
#: widened by the square root of the intervals it spans (at most ``_GAP_MOST``), the growth of
#: a random walk's error, which bounds a stationary loop's.
_GAP_LEAST = 1.5
_GAP_MOST = 100.0


@dataclass
class ChunkView:
    """What the model says about one chunk ``[rows, signals]``; read by the detectors.

    ``surprise`` is NaN at gaps and 0 before calibration; ``dev``, ``long`` and ``exceed`` are 0
    wherever there is nothing to say (gap, warm-up), so sums over rows need no mask.
    """

    x: F64
    #: Where a sample is (None: everywhere).
    valid: B | None
    surprise: FA
    #: Signed residual of the best short-term or seasonal predictor, in scales, clipped, centred.
    dev: FA
    #: Signed residual of the long-term expectation, in inflated scales, clipped, centred.
    long: FA
    #: 1 where the surprise passed its 90th percentile, else 0.
    exceed: FA
    #: Signals whose surprise is calibrated (``calibrate_after`` samples seen).
    calibrated: B
    #: Per signal: the chunk's mean with its seasonal part (cycle, day) taken off (NaN where the
    #: chunk has no sample).
    level: F64
    #: Per signal: the chunk's mean squared short-term residual (the signal's units squared; NaN
    #: where unknown).
    spread: F64
    #: Per signal: ``level`` has a seasonal part (a known cycle or day profile) taken off.
    seasonal: B
    #: Per signal: the chunk's plain mean (``level`` where ``seasonal`` is False).
    plain: F64
    #: Per signal: ``level`` is the chunk's mean less its cycle's shape (the level the cycle rides
    #: on, a level like a plain signal's), not a residual against a seasonal memory.
    shaped: B

    def rows_from(self, first: int) -> ChunkView:
        """The view of this chunk's rows from ``first`` on."""
        part = slice(first, None)
        return ChunkView(
            self.x[part],
            None if self.valid is None else self.valid[part],
            self.surprise[part],
            self.dev[part],
            self.long[part],
            self.exceed[part],
            self.calibrated,
            self.level,
            self.spread,
            self.seasonal,
            self.plain,
            self.shaped,
        )


@dataclass
class _Work:
    """One chunk's intermediate arrays, from prediction to learning (deviations from the slow mean)."""

    valid: B | None
    #: Samples per signal in the chunk.
    k: F64
    #: Smallest variance a scale may have (relative to the signal's level).
    floor: F64
    d0: FA
    d1: FA
    d2: FA
    e_ar: FA
    e_last: FA
    #: The better short-term predictor's residual (unscaled).
    raw: FA
    #: The best predictor's signed residual, in scales.
    short: FA
    #: The best predictor's size, in scales.
    z: FA
    #: The short-term residual against the slowly learnt scale.
    z_slow: FA
    #: The two samples before the chunk, then its own (deviations; ``d0``, ``d1``, ``d2`` are views).
    history: FA | None = None
    long_ref: NDArray[np.float32] | None = None
    e_day: FA | None = None
    e_cycle: FA | None = None
    bins: NDArray[np.intp] | None = None
    cycle_known: B | None = None
    #: Per signal with a known cycle: the chunk's mean of the base level its prediction carries
    #: (the prediction less the cycle's shape; NaN: none known).
    cycle_base: F64 | None = None
    #: Per row and signal the time since the signal's sample before (ns; NaN: none), and each
    #: signal's last sample time (UTC ns; NaN: none yet), when the chunk has times.
    times: tuple[F64, F64] | None = None
    e_long: FA | None = None
    dev_clipped: FA | None = None
    long_clipped: FA | None = None
    #: Per signal: the long-term expectation has a seasonal part (a cycle or day profile).
    seasonal: B | None = None


@register
class ForecastModel(RowDetector):
    """Shared state of the default detectors (registered as ``forecast``; not scored itself)."""

    name: ClassVar[str] = "forecast"
    scored: ClassVar[bool] = False
    params: ClassVar[dict[str, Param]] = {
        "alpha": Param(0.01, "EWMA rate of the slow mean (per sample)", gt=0, lt=1),
        "ar_alpha": Param(0.02, "EWMA rate of the autocovariances behind the AR(2) forecast", gt=0, lt=1),
        "scale_alpha": Param(0.02, "EWMA rate of the predictors' squared residuals", gt=0, lt=1),
        "long_alpha": Param(
            0.002, "EWMA rate of the long-term residual's scale (slow: a drift is not noise)", gt=0, lt=1
        ),
        "grace": Param(50, "warm-up, in samples: the model learns, nothing scores", integer=True, ge=2),
        "calibrate_after": Param(300, "samples before the surprise is calibrated", integer=True, ge=10),
        "shift_after": Param(
            1200, "samples before the shift sum is armed (a cycle shows itself over periods)", integer=True, ge=10
        ),
        "quantile": Param(0.999, "quantile of the surprise that scores 1", gt=0.5, lt=1, per_signal=False),
        "quantile_rate": Param(0.2, "log-domain step of the quantile estimate", gt=0, le=1, per_signal=False),
        "clip": Param(4.0, "winsorising bound, in scales", gt=1),
        "day_bins": Param(288, "bins of the day profile (288: 5 minutes)", integer=True, ge=4, per_signal=False),
        "day_rate": Param(0.3, "day profile learning rate, per visit of a bin", gt=0, le=1, per_signal=False),
        "cycles": Param(1, "learn each signal's cycle (1) or not (0)", integer=True, ge=0, le=1, per_signal=False),
    }

    count: F64
    mean: F64
    c0: F64
    c1: F64
    c2: F64
    last1: F64
    last2: F64
    var_ar: F64
    var_last: F64
    var_day: F64
    var_cycle: F64
    var_long: F64
    var_slow: F64
    var_chunk: F64
    mean_dev: F64
    mean_long: F64
    log_q: F64
    log_q90: F64
    last_ts: F64
    interval: F64

    #: Per-signal state (name -> initial value): saved and restored per regime, reset per signal.
    STATE: ClassVar[dict[str, float]] = {
        "count": 0.0,
        "mean": 0.0,
        "c0": 0.0,
        "c1": 0.0,
        "c2": 0.0,
        "last1": np.nan,
        "last2": np.nan,
        "var_ar": 0.0,
        "var_last": 0.0,
        "var_day": 0.0,
        "var_cycle": 0.0,
        "var_long": 0.0,
        "var_slow": 0.0,
        "var_chunk": 0.0,
        "mean_dev": 0.0,
        "mean_long": 0.0,
        "log_q": float(np.log(4.0)),
        "log_q90": float(np.log(1.645)),  # |z| of a normal sample: 10 % above it
        "last_ts": np.nan,  # the time of the last sample learnt from (UTC ns; NaN: none yet)
        "interval": 0.0,  # the usual time between two samples (ns; 0: not known yet)
    }

    def __init__(
        self,
        n_signals: int,
        deps: Mapping[str, RowDetector] | None = None,
        alpha: float = 0.01,
        ar_alpha: float = 0.02,
        scale_alpha: float = 0.02,
        long_alpha: float = 0.002,
        grace: int = 50,
        calibrate_after: int = 300,
        shift_after: int = 1200,
        quantile: float = 0.999,
        quantile_rate: float = 0.2,
        clip: float = 4.0,
        day_bins: int = 288,
        day_rate: float = 0.3,
        cycles: int = 1,
    ) -> None:
        self.n_signals = n_signals
        self.alpha, self.ar_alpha, self.scale_alpha, self.long_alpha = alpha, ar_alpha, scale_alpha, long_alpha
        self.grace, self.calibrate_after, self.shift_after, self.clip = grace, calibrate_after, shift_after, clip
        self.quantile, self.quantile_rate = quantile, quantile_rate
        self.day = DayProfile(n_signals, day_bins, day_rate)
        self.cycle = CycleLearner(n_signals) if cycles else None
        self.rows = 0  # the row clock: chunks are aligned to it
        self._pending: tuple[F64, NDArray[np.int64] | None] | None = None
        #: Rows left during which each signal learns nothing (a state change is settling).
        self.frozen = np.zeros(n_signals, np.int64)
        #: Mean step per sample over the last chunk, while a signal is in transition (else 0).
        self.slope = np.zeros(n_signals)
        #: Signals in alarm (set per chunk): their slow mean does not move, and their seasonal
        #: memory (cycle ring, day profile) is fed their seasonal expectation instead of their
        #: samples, so that a fault is learnt neither as the level nor as part of the cycle (the
        #: long-term residual of a drift that ends is then not a shift the other way).
        self.held = np.zeros(n_signals, bool)
        for attr, initial in self.STATE.items():
            setattr(self, attr, np.full(n_signals, initial))

    # -- one chunk ---------------------------------------------------------------------------
    @property
    def position(self) -> int:
        """Rows of the current chunk already seen (learning waits for the chunk to complete)."""
        return 0 if self._pending is None else int(self._pending[0].shape[0])

    def chunk(self, x: F64, ts: NDArray[np.int64] | None) -> ChunkView:
        """Score rows ``x`` (``[rows, signals]``, NaN = gap) of the current chunk; learn once it is complete.

        A block that ends inside a chunk leaves its rows pending: they are scored now, with the
        chunk's frozen parameters, and learnt from with the rest of the chunk, so scores do not
        depend on how a stream is cut into blocks.
        """
        if self._pending is not None:
            seen = self._pending[0].shape[0]
            whole_x = np.concatenate([self._pending[0], x])
            whole_ts = None if ts is None or self._pending[1] is None else np.concatenate([self._pending[1], ts])
        else:
            seen, whole_x, whole_ts = 0, x, ts
        complete = whole_x.shape[0] == PERIOD
        view = self._chunk(whole_x, whole_ts, learn=complete)
        self._pending = None if complete else (whole_x, whole_ts)
        return view.rows_from(seen) if seen else view

    def settle(self) -> None:
        """Learn from the rows of a chunk seen so far now, not at the chunk's end.

        Before a regime switch: what was seen belongs to the regime being left.
        """
        if self._pending is not None:
            x, ts = self._pending
            self._pending = None
            self._chunk(x, ts, learn=True)

    def _chunk(self, x: F64, ts: NDArray[np.int64] | None, learn: bool) -> ChunkView:
        """Predict, then (when ``learn``) learn, the rows of one chunk.

        Arithmetic runs in float32 on deviations from the slow mean (kept in float64), so a reading
        of 1e6 keeps the resolution of its distance to the mean.
        """
        times = None if ts is None else self._times(x, ts)
        w = self._short_term(x, None if times is None else self._gaps(times[0]))
        w.times = times
        if ts is not None:
            self._day_term(x, ts, w)
        if self.cycle is not None and (self.cycle.period > 0).any():
            self._cycle_term(x.shape[0], w)
        view = self._scores(x, w)
        if learn:
            self._learn_chunk(x, ts, w)
        return view

    def _times(self, x: F64, ts: NDArray[np.int64]) -> tuple[F64, F64]:
        """Per row and signal, the time since the signal's sample before (ns; NaN without a sample
        or one before), and each signal's last sample time after the chunk (UTC ns)."""
        gappy = np.isnan(x)
        t = ts.astype(np.float64)
        if gappy.any():
            t[gappy] = np.nan
        filled = _fill_forward(np.vstack([self.last_ts[None], t]))
        since: F64 = t - filled[:-1]
        return since, filled[-1]

    def _gaps(self, since: F64) -> NDArray[np.float32] | None:
        """Per row and signal: how much wider than usual the short-term error of a sample after a
        gap is (the square root of the usual intervals since the sample before; 1 elsewhere), or
        None when no sample of the chunk follows a gap (``since``: see :meth:`_times`)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            spans = since / self.interval
        late = spans >= _GAP_LEAST  # NaN (no sample, no time before, no interval yet) is not late
        if not late.any():
            return None
        widen: NDArray[np.float32] = np.where(late, np.sqrt(np.minimum(spans, _GAP_MOST)), 1.0).astype(np.float32)
        return widen

    def _learn_times(self, spans: F64, last_ts: F64) -> None:
        """The last sample's time, and the usual interval: each chunk's median interval, a step of
        at most a factor of 3 once known (gaps hardly move it, a slower poll is learnt)."""
        self.last_ts = last_ts
        if np.isnan(spans).any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a signal without two samples: NaN
                usual = np.nanmedian(spans, axis=0)
        else:
            usual = np.median(spans, axis=0)
        seen = np.isfinite(usual) & (usual > 0)
        known = self.interval > 0
        step = np.clip(usual, self.interval / 3.0, self.interval * 3.0)
        moved = np.where(known, self.interval + 0.1 * (step - self.interval), usual)
        self.interval = np.where(seen, moved, self.interval)

    def _after_gaps(self, e_ar: FA, e_last: FA, widen: NDArray[np.float32], reach: FA, floor: F64) -> None:
        """Divide the short-term residuals of samples after a gap by how much wider their error may be
        (in place), at most as wide as a stale sample's worst error: predicting with one-step
        coefficients from a sample ``k`` steps old errs by at most (1 + ``reach``) level sds."""
        worst = (self.c0 / np.maximum(self.var_ar, floor)) * (1.0 + reach) ** 2
        bounded = np.sqrt(np.minimum(widen * widen, np.maximum(worst, 1.0))).astype(np.float32)
        e_ar /= bounded
        e_last /= bounded

    def _short_term(self, x: F64, widen: NDArray[np.float32] | None = None) -> _Work:
        """The AR(2) and last-value residuals of a chunk, and the better one's size in scales
        (``widen``: how much wider than usual each sample's error may be, after a gap)."""
        rows, n = x.shape
        gappy = np.isnan(np.add.reduce(x, axis=0))  # one pass; a column with a NaN sums to NaN
        valid = ~np.isnan(x) if gappy.any() else None
        k = np.full(n, float(rows)) if valid is None else valid.sum(axis=0).astype(np.float64)
        m = self.mean
        # The last two samples before each row (gaps carried over), as deviations from the mean.
        history64 = np.empty((rows + 2, n))
        history64[0], history64[1], history64[2:] = self.last2, self.last1, x
        if valid is not None or np.isnan(self.last1).any():
            history64 = _fill_forward(history64)
        history64 -= m
        history = history64.astype(np.float32)
        if valid is not None or np.isnan(history[0]).any() or np.isnan(history[1]).any():
            np.nan_to_num(history, copy=False)  # no sample yet: the mean
        d0, d1, d2 = history[2:], history[1:-1], history[:-2]
        p1, p2 = (c.astype(np.float32) for c in self._ar_coefficients())
        e_ar = d0 - p1 * d1
        e_ar -= p2 * d2
        e_last = d0 - d1
        floor = 1e-12 * m * m + 1e-18
        if widen is not None:
            self._after_gaps(e_ar, e_last, widen, np.abs(p1) + np.abs(p2), floor)
        inv_ar = 1.0 / np.sqrt(np.maximum(self.var_ar, floor))
        inv_last = 1.0 / np.sqrt(np.maximum(self.var_last, floor))
        stepwise = self.var_last < self.var_ar
        # While a state change settles the level is in transition: the last value is as good a
        # predictor as the signal's own (a temperature heading for its new level), no penalty.
        penalty: float | F64 = np.where(self.frozen > 0, 1.0, _OTHER) if self.frozen.any() else _OTHER
        # The short-term residual, in scales: the last value's for step-wise signals, else AR(2)'s.
        if stepwise.any():
            w = stepwise.astype(np.float32)
            raw = e_ar * (1.0 - w)
            raw += e_last * w
            short = e_ar * _f32(inv_ar * ~stepwise)
            short += e_last * _f32(inv_last * stepwise)
            other = e_last * _f32(inv_last * ~stepwise * penalty)
            other += e_ar * _f32(inv_ar * stepwise * penalty)
        else:
            raw, short = e_ar, e_ar * _f32(inv_ar)
            other = e_last * _f32(inv_last * penalty)
        # The other short-term predictor explains a sample too, at a penalty: a spike stays a
        # spike (its step is no smaller than its deviation), a temperature returning to its
        # level after a stop is explained by its last value.
        z = np.fmin(np.abs(short), np.abs(other))
        if self.frozen.any():
            # In transition a level also moves steadily: the last value plus the last chunk's mean
            # step explains it (a spike stays a spike: one step, not a slope). Other signals: +inf.
            # Before a slope is known (the first chunk), the last step continued: its noise is
            # sqrt(3) times the last value's, for white noise.
            held = self.frozen > 0
            fresh = held & (self.slope == 0.0)
            trend = e_last - _f32(np.where(held, self.slope, 0.0))
            trend -= _f32(fresh) * (d1 - d2)
            trend *= _f32(np.where(held, inv_last / np.where(fresh, np.sqrt(3.0), 1.0), 0.0))
            np.abs(trend, out=trend)
            trend += _f32(np.where(held, 0.0, np.inf))
            z = np.fmin(z, trend)
        # Against the slowly learnt scale: what the variance detector counts (noise that grows
        # is learnt by the short-term scales within tens of samples, not by this one).
        z_slow = np.abs(raw)
        z_slow *= _f32(1.0 / np.sqrt(np.maximum(self.var_slow, floor)))
        return _Work(valid, k, floor, d0, d1, d2, e_ar, e_last, raw, short, z, z_slow, history=history)

    def _day_term(self, x: F64, ts: NDArray[np.int64], w: _Work) -> None:
        """Fold in the day profile's prediction, where it has one."""
        day_pred, w.bins = self.day.predict(ts, np.ones(x.shape, bool) if w.valid is None else w.valid)
        if self.day.table is not None and not np.isnan(day_pred).all():
            day_dev = (day_pred - self.mean).astype(np.float32)
            w.e_day = w.d0 - day_dev
            inv_day = _f32(1.0 / np.sqrt(np.maximum(self.var_day, w.floor)))
            w.z, w.short, w.long_ref = _seasonal(w.e_day * inv_day, w.z, w.short, day_dev, w.long_ref)

    def _cycle_term(self, rows: int, w: _Work) -> None:
        """Fold in the cycle's prediction, for the signals whose cycle is known."""
        assert self.cycle is not None
        ends, bases, cycle_known = self.cycle.predict(PERIOD, self.rows)  # the whole chunk, whatever is seen of it
        if not cycle_known.any():
            return
        w.cycle_base = np.where(cycle_known, bases, np.nan)
        m = self.mean
        first, last = (_f32(np.where(cycle_known, end - m, 0.0)) for end in ends)
        steps = (np.arange(rows, dtype=np.float32) / np.float32(PERIOD - 1))[:, None]
        cycle_dev = first + steps * (last - first)  # unknown signals: their mean
        w.e_cycle, w.cycle_known = w.d0 - cycle_dev, cycle_known
        ready = cycle_known & (self.var_cycle > 0)
        inv_cycle = _f32(ready / np.sqrt(np.maximum(self.var_cycle, w.floor)))
        w.z, w.short, w.long_ref = _cyclic(w.e_cycle * inv_cycle, ready, w.z, w.short, cycle_dev, w.long_ref)

    def _scores(self, x: F64, w: _Work) -> ChunkView:
        """What the detectors read, from the chunk's residuals."""
        valid, floor = w.valid, w.floor
        warm = self.count >= self.grace
        calibrated = self.count >= self.calibrate_after
        steady = valid is None and bool(calibrated.all())
        surprise = w.z * _f32(np.exp(-self.log_q) * calibrated)
        exceed = (w.z_slow > _f32(np.exp(self.log_q90))).astype(np.float32)
        clip = np.float32(self.clip)
        w.dev_clipped = np.clip(w.short, -clip, clip)
        w.e_long = w.d0 if w.long_ref is None else w.d0 - w.long_ref
        inflate = np.sqrt(np.clip(PERIOD * self.var_chunk / np.maximum(self.var_long, floor), 1.0, 400.0))
        w.long_clipped = w.e_long * _f32(1.0 / (np.sqrt(np.maximum(self.var_long, floor)) * inflate))
        np.clip(w.long_clipped, -clip, clip, out=w.long_clipped)
        dev = w.dev_clipped - _f32(self.mean_dev)
        long = w.long_clipped - _f32(self.mean_long)
        # The long-term view needs the longest history: a cycle shows itself only over periods.
        long_known = self.count >= self.shift_after
        if not steady or not long_known.all():
            exceed *= calibrated
            dev *= warm
            long *= long_known
        if valid is not None:
            surprise[~valid] = np.nan
            for a in (dev, long, exceed):
                a[~valid] = 0.0
        level, spread, seasonal, plain, shaped = self._condition(w)
        return ChunkView(x, valid, surprise, dev, long, exceed, calibrated, level, spread, seasonal, plain, shaped)

    def _condition(self, w: _Work) -> tuple[F64, F64, B, F64, B]:
        """Per signal: the chunk's level (its mean; for a signal with a known cycle or day profile,
        the mean of its residual against that prediction; NaN without a sample), its spread (mean
        squared short-term residual, in the signal's units squared; NaN while the model is warming
        up), whether the level is seasonal (a residual), and the plain mean."""
        k = np.maximum(w.k, 1.0)
        warm = (w.k > 0) & (self.count >= self.grace)  # the signal's own warm-up holds here too
        # Each sample counts at most ``WILD_SCALES`` scales: one wild reading (a swapped
        # column, a bit error) is a spike the detectors report, not a level or a noise that
        # lasts for the dozens of chunks the smoothed condition takes to forget it.
        known = warm & (self.var_long > w.floor)  # a scale to speak of (see the autocovariances)
        bound = np.where(known, WILD_SCALES * np.sqrt(np.maximum(self.var_long, 1e-300)), np.inf)
        assert w.e_long is not None, "scored first"
        resid = np.clip(w.e_long, _f32(-bound), _f32(bound))
        bound2 = np.where(warm & (self.var_slow > w.floor), WILD_SCALES**2 * self.var_slow, np.inf)
        raw2 = np.minimum(np.square(w.raw, dtype=np.float64), bound2)
        d0 = w.d0
        if w.valid is not None:
            d0, raw2, resid = d0 * w.valid, raw2 * w.valid, resid * w.valid
        seasonal = np.zeros(d0.shape[1], bool)
        plain = self.mean + _total(d0) / k
        # The residual against the seasonal prediction where there is one: the slow mean follows
        # a slow cycle part of the way, so the mean plus the residual would still swing with it.
        level = _total(resid) / k
        if w.long_ref is not None:
            seasonal = np.asarray((w.long_ref != 0).any(axis=0))
        level = np.where(seasonal, level, self.mean + level)
        shaped = np.zeros_like(seasonal)
        if w.cycle_base is not None and w.cycle_known is not None:
            # Against the cycle's shape alone, a level that moves under the cycle (a drift, a
            # shift the cycle's memory has taken in) stays in the level.
            shaped = seasonal & w.cycle_known & ~np.isnan(w.cycle_base)
            level = np.where(shaped, level + np.nan_to_num(w.cycle_base), level)
        w.seasonal = seasonal
        spread: F64 = np.where(warm, _total(raw2) / k, np.nan)
        return np.where(warm, level, np.nan), spread, seasonal, np.where(warm, plain, np.nan), shaped

    def _learn_chunk(self, x: F64, ts: NDArray[np.int64] | None, w: _Work) -> None:
        """Learn from the values as they were predicted (not while a state change settles)."""
        rows, seen = x.shape[0], w.k  # samples per signal, before a settling signal's are discounted
        if self.frozen.any():
            still = self.frozen > 0
            w.valid = np.broadcast_to(~still, x.shape).copy() if w.valid is None else w.valid & ~still
            w.k = np.where(still, 0.0, w.k)
            self.frozen = np.maximum(self.frozen - rows, 0)
        self._learn(w, self.count >= self.grace)
        self._learn_seasons(self._expected_where_held(x, w) if self.held.any() else x, ts, w)
        before = self.last1
        if w.valid is None:
            self.last2, self.last1 = x[-2].copy() if rows > 1 else self.last1, x[-1].copy()
        else:
            self.last1, self.last2 = _last_two(self.last2, self.last1, x)
        if self.frozen.any() or self.slope.any():
            # The mean step over the chunk, for signals in transition (0 once they settle).
            step = np.nan_to_num((self.last1 - before) / np.maximum(seen, 1.0))
            self.slope = np.where(self.frozen > 0, step, 0.0)
        self.count = self.count + w.k
        self.rows += rows
        if w.times is not None:
            self._learn_times(*w.times)

    def _expected_where_held(self, x: F64, w: _Work) -> F64:
        """``x`` with the held signals' samples replaced by their seasonal expectation (where they
        have one): the cycle goes on with what normal would have been, not with the fault."""
        if w.long_ref is None or w.seasonal is None:
            return x
        expected = self.mean + w.long_ref.astype(np.float64)
        fed: F64 = np.where(self.held & w.seasonal, expected, x)
        return fed

    def _learn(self, w: _Work, warm: B) -> None:
        """The mean, autocovariances, scales and quantiles, from one chunk's residuals."""
        clip, valid, k = self.clip, w.valid, w.k
        d0, e_long, dev_clipped, long_clipped = w.d0, w.e_long, w.dev_clipped, w.long_clipped
        assert e_long is not None, "scored first"
        assert dev_clipped is not None, "scored first"
        assert long_clipped is not None, "scored first"
        rows = d0.shape[0]
        # Past warm-up every signal learns at its own rates: the chunk weights are then constant.
        settled = valid is None and rows == PERIOD and bool((self.count >= 10_000).all())
        if valid is not None:  # a gap teaches nothing (its deviations count as 0, its weight as 0)
            # d0, d1 and d2 are shifted views of one history: zeroing one in place would zero a
            # valid sample of another (and e_long may be d0 itself). Only d0 needs zeros: the
            # products with d1 and d2 then vanish at gaps.
            d0 = d0.copy()
            if e_long is w.d0:
                e_long = d0
            for a in (d0, w.e_ar, w.e_last, e_long, dev_clipped, long_clipped, w.raw):
                a[~valid] = 0.0
        # Warm-up: the exact running mean (k new samples after ``count``) until the EWMA weighs more.
        share = k / np.maximum(self.count + k, 1.0)
        weight = self._settled_weight if settled else (lambda name, rate: np.maximum(_weight(rate, k), share))
        # The slow mean: winsorised once warm.
        bound = _f32(np.where(warm, clip * np.sqrt(np.maximum(self.c0, 1e-300)), np.inf))
        moved = np.minimum(d0, bound)
        np.maximum(moved, -bound, out=moved)
        scale = 1.0 / np.maximum(k, 1.0)
        step = weight("alpha", self.alpha) * (_total(moved) * scale)
        self.mean = self.mean + (np.where(self.held, 0.0, step) if self.held.any() else step)
        # Autocovariances (around the mean the chunk was predicted with), each deviation bounded
        # by ``WILD_SCALES`` sds once warm: one wild reading would otherwise swell the variance
        # (and with it the mean's bound) and flatten the AR coefficients for a thousand samples.
        rate = weight("ar_alpha", self.ar_alpha)
        # A signal whose variance is still below the floor (constant so far) has no scale to
        # bound by: bounding by none would keep its variance, and its mean's bound, at 0 for ever.
        known = warm & (self.c0 > w.floor)
        wild = _f32(np.where(known, WILD_SCALES * np.sqrt(np.maximum(self.c0, 1e-300)), np.inf))
        assert w.history is not None, "scored first"
        seen = np.clip(w.history, -wild, wild)
        a0, a1, a2 = seen[2:], seen[1:-1], seen[:-2]
        if valid is not None:
            a0 = a0 * valid
        self.c0 += rate * (_total(a0 * a0) * scale - self.c0)
        self.c1 += rate * (_total(a0 * a1) * scale - self.c1)
        self.c2 += rate * (_total(a0 * a2) * scale - self.c2)
        # Residual scales, winsorised once warm; from the second chunk on (before it, the mean
        # they are measured from is not known yet).
        known = self.count > 0
        scale_rate = weight("scale_alpha", self.scale_alpha) * known
        self.var_ar += scale_rate * (_winsorised_square(w.e_ar, self.var_ar, clip, warm) * scale - self.var_ar)
        self.var_last += scale_rate * (_winsorised_square(w.e_last, self.var_last, clip, warm) * scale - self.var_last)
        # The slow scales start once the model is warm: a running mean of the warm-up's residuals
        # (measured from a mean still settling) would take hundreds of samples to forget.
        since_warm = np.maximum(self.count - self.grace, 0.0)
        long_rate = (
            self._settled_weight("long_alpha", self.long_alpha)
            if settled
            else np.maximum(_weight(self.long_alpha, k), k / np.maximum(since_warm + k, 1.0))
        ) * warm
        self.var_long += long_rate * (_winsorised_square(e_long, self.var_long, clip, warm) * scale - self.var_long)
        self.var_slow += long_rate * (_winsorised_square(w.raw, self.var_slow, clip, warm) * scale - self.var_slow)
        if rows == PERIOD:
            full = k == PERIOD
            chunk_mean = _total(e_long) * scale
            per_chunk = np.minimum(np.maximum(self.long_alpha * PERIOD, 1.0 / (since_warm / PERIOD + 1.0)), 1.0)
            self.var_chunk += (per_chunk * full * warm) * (chunk_mean * chunk_mean - self.var_chunk)
        self.mean_dev += long_rate * warm * (_total(dev_clipped) * scale - self.mean_dev)
        self.mean_long += long_rate * warm * (_total(long_clipped) * scale - self.mean_long)
        self._learn_quantiles(w, warm)

    def _learn_quantiles(self, w: _Work, warm: B) -> None:
        """The surprise's own quantiles (log domain): bounded steps up, smaller ones down."""
        valid, k = w.valid, w.k
        over_q = w.z > _f32(np.exp(self.log_q))
        over = _total(over_q) if valid is None else _total(over_q & valid)
        q = self.quantile
        self.log_q += self.quantile_rate * warm * (q * over - (1.0 - q) * (k - over))
        over90 = w.z_slow > _f32(np.exp(self.log_q90))
        over90_n = _total(over90) if valid is None else _total(over90 & valid)
        self.log_q90 += 0.01 * warm * (0.9 * over90_n - 0.1 * (k - over90_n))

    def _learn_seasons(self, x: F64, ts: NDArray[np.int64] | None, w: _Work) -> None:
        """The seasonal predictors' scales, the day profile and the cycle's ring."""
        valid, bins, e_day, e_cycle, cycle_known = w.valid, w.bins, w.e_day, w.e_cycle, w.cycle_known
        clip, k_valid = self.clip, np.ones(x.shape, bool) if valid is None else valid
        running = 1.0 / (self.count + 1.0)
        rate = np.maximum(self.scale_alpha, running)
        if e_day is not None:
            have = k_valid & ~np.isnan(e_day)
            self.var_day = _ewma_masked(self.var_day, e_day, have, rate, clip, self.var_day > 0)
        if e_cycle is not None and cycle_known is not None:
            if valid is None:
                k = cycle_known * float(x.shape[0])
                total = _winsorised_square(e_cycle, self.var_cycle, clip, self.var_cycle > 0)
                fresh = _weight(rate, k) * (total / np.maximum(k, 1.0) - self.var_cycle)
                self.var_cycle = self.var_cycle + np.where(cycle_known, fresh, 0.0)
            else:
                have = k_valid & cycle_known
                self.var_cycle = _ewma_masked(self.var_cycle, e_cycle, have, rate, clip, self.var_cycle > 0)
        if ts is not None and bins is not None:
            resid = np.zeros_like(x) if e_day is None else np.nan_to_num(e_day)
            sd = np.sqrt(np.maximum(self.var_day, w.floor))
            bounded = np.where(self.var_day > 0, np.clip(resid, -clip * sd, clip * sd), resid)
            self.day.learn(x, ts, k_valid, bins, bounded)
        if self.cycle is not None:
            self.cycle.push(x, gappy=valid is not None, held=self.held)

    def level_gap(self, signals: NDArray[np.intp], x: F64) -> F64:
        """How far ``signals`` (samples ``x``, ``[rows, len(signals)]``) are from their level, in level sd.

        The distance of the samples' mean to the slow mean of the state the model holds; NaN for a
        signal the state has not warmed up yet (its level is not known).
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a column without samples: NaN
            mean = np.nanmean(x, axis=0)
        gap = np.abs(mean - self.mean[signals]) / np.sqrt(np.maximum(self.c0[signals], 1e-300))
        known: F64 = np.where(self.count[signals] >= self.grace, gap, np.nan)
        return known

    def _settled_weight(self, name: str, rate: float | F64) -> F64:
        """The weight a full chunk of ``PERIOD`` samples gets at ``rate`` (computed once)."""
        cache: dict[str, F64] = self.__dict__.setdefault("_weights", {})
        if name not in cache:
            cache[name] = _weight(np.broadcast_to(np.asarray(rate, np.float64), (self.n_signals,)), np.float64(PERIOD))
        return cache[name]

    def _ar_coefficients(self) -> tuple[F64, F64]:
        c0, c1, c2 = self.c0, self.c1, self.c2
        den = c0 * c0 - c1 * c1
        ok = den > 1e-9 * c0 * c0 + 1e-300
        safe = np.where(ok, den, 1.0)
        p1 = np.where(ok, c1 * (c0 - c2) / safe, 0.0)
        p2 = np.where(ok, (c0 * c2 - c1 * c1) / safe, 0.0)
        return p1, p2

    # -- per signal --------------------------------------------------------------------------
    def reset(self, signals: NDArray[np.intp]) -> None:
        self.settle()
        for attr, initial in self.STATE.items():
            getattr(self, attr)[signals] = initial
        self.day.reset(signals)
        if self.cycle is not None:
            self.cycle.reset(signals)

    #: What a signal carries across a regime switch: its last samples are its last samples.
    CONTINUOUS: ClassVar[tuple[str, ...]] = ("last1", "last2", "last_ts", "interval")

    def save(self, signals: NDArray[np.intp]) -> dict[str, F64]:
        """The regime-specific state of ``signals`` (levels, scales, quantiles)."""
        self.settle()
        return {attr: getattr(self, attr)[signals].copy() for attr in self.STATE if attr not in self.CONTINUOUS}

    def load(self, signals: NDArray[np.intp], saved: dict[str, F64] | None) -> None:
        """Put back what :meth:`save` gave (a regime never seen starts afresh: None).

        The cycle is learnt anew: a ring that spans two regimes holds no cycle of either.
        """
        self.settle()
        for attr, initial in self.STATE.items():
            if attr not in self.CONTINUOUS:
                getattr(self, attr)[signals] = initial if saved is None else saved[attr]
        if self.cycle is not None:
            self.cycle.reset(signals)

    def step(self, x: F64, valid: NDArray[np.bool_] | None, out: F64) -> None:
        raise TypeError("the forecast model works on chunks; use DetectorSet")


def _seasonal(
    scaled: NDArray[np.float32],
    z: NDArray[np.float32],
    short: NDArray[np.float32],
    prediction: NDArray[np.float32],
    long_ref: NDArray[np.float32] | None,
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    """Fold a seasonal predictor in where it has a prediction and explains the sample better.

    Blends by arithmetic, not boolean indexing: a scattered mask is several times slower in numpy.
    ``prediction`` and ``long_ref`` are deviations from the slow mean (0: the mean itself).
    """
    known = ~np.isnan(scaled)
    value = np.nan_to_num(scaled)
    size = np.abs(value)
    better = (size < z) & known
    short = short + better * (value - short)
    z = np.fmin(z, np.where(known, size, np.inf)) if not known.all() else np.fmin(z, size)
    fallback = np.zeros_like(z) if long_ref is None else long_ref
    long_ref = fallback + known * (np.nan_to_num(prediction) - fallback)
    return z, short, long_ref


def _cyclic(
    scaled: NDArray[np.float32],
    ready: B,
    z: NDArray[np.float32],
    short: NDArray[np.float32],
    prediction: NDArray[np.float32],
    long_ref: NDArray[np.float32] | None,
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    """Fold the cycle's predictor in, for the signals (``ready``, per column) that have one."""
    size = np.abs(scaled)
    better = size < z
    better &= ready
    short = short + better * (scaled - short)
    z = np.fmin(z, size + _f32(np.where(ready, 0.0, np.inf)))
    fallback = np.zeros_like(z) if long_ref is None else long_ref
    long_ref = fallback + ready * (prediction - fallback)
    return z, short, long_ref


def _f32(a: NDArray[np.generic]) -> NDArray[np.float32]:
    """A per-signal parameter in float32, so that float32 chunks stay float32."""
    return np.asarray(a, np.float32)


#: Scales beyond which a sample counts no more: toward the autocovariances (sds of the signal), the
#: chunk's level (of the long-term residual) and spread (of the short-term one) that the condition
#: smooths. A wild reading is the detectors' to report, not a lasting change of the model.
WILD_SCALES = 8.0


def _total(a: NDArray[np.generic]) -> F64:
    """Sum over the chunk's rows."""
    total: F64 = np.add.reduce(a, axis=0, dtype=np.float64)
    return total


def _weight(rate: FA | float, k: FA | float) -> F64:
    """The total weight an EWMA of ``rate`` gives ``k`` new samples."""
    weight: F64 = 1.0 - (1.0 - np.minimum(np.asarray(rate, np.float64), 1.0)) ** np.asarray(k, np.float64)
    return weight


def _winsorised_square(resid: FA, var: F64, clip: float, warm: B) -> F64:
    """Sum over rows of ``resid**2``, each residual bounded by ``clip`` scales once warm."""
    bound = _f32(np.where(warm & (var > 0), clip * np.sqrt(np.maximum(var, 1e-300)), np.inf))
    bounded = np.minimum(resid, bound)
    np.maximum(bounded, -bound, out=bounded)
    np.multiply(bounded, bounded, out=bounded)
    return _total(bounded)


def _ewma_masked(var: F64, resid: FA, have: B, rate: F64, clip: float, winsorise: B) -> F64:
    r = np.where(have, resid, 0.0)
    sd = np.sqrt(np.maximum(var, 1e-300))
    r = np.where(winsorise, np.clip(r, -clip * sd, clip * sd), r)
    k = have.sum(axis=0).astype(np.float64)
    moved: F64 = var + _weight(rate, k) * (_total(r * r) / np.maximum(k, 1.0) - var) * (k > 0)
    return moved


def _fill_forward(a: F64) -> F64:
    """NaNs replaced by the last non-NaN value above them in their column."""
    gaps = np.isnan(a)
    if not gaps.any():
        return a
    index = np.where(~gaps, np.arange(a.shape[0])[:, None], 0)
    np.maximum.accumulate(index, axis=0, out=index)
    filled: F64 = a[index, np.arange(a.shape[1])]
    return filled


def _last_two(last2: F64, last1: F64, x: F64) -> tuple[F64, F64]:
    """The last and the second-last valid samples, over the carried samples and the chunk."""
    stacked = np.concatenate([last2[None], last1[None], x])
    ok = ~np.isnan(stacked)
    remaining = np.cumsum(ok[::-1], axis=0)[::-1]  # valid samples from each row to the end
    cols = np.arange(stacked.shape[1])
    out = []
    for which in (1, 2):
        pick = ok & (remaining == which)
        has = pick.any(axis=0)
        row = np.where(has, stacked.shape[0] - 1 - np.argmax(pick[::-1], axis=0), 0)
        out.append(np.where(has, stacked[row, cols], np.nan))
    return out[0], out[1]


__all__ = ["PERIOD", "ChunkView", "ForecastModel"]
