"""Detectors: the shared contract for every registered detector, then each one's own behaviour."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from edge_agent.analytics.alarms import Alarms
from edge_agent.analytics.anomaly import AnomalyScorer, AnomalySettings
from edge_agent.analytics.detectors import REGISTRY, DetectorSet, DetectorSettings, RowDetector, scored
from edge_agent.analytics.detectors.cusum import Cusum
from edge_agent.analytics.detectors.level import EwmaLevel
from edge_agent.analytics.detectors.limits import OutOfRange
from edge_agent.analytics.detectors.ring import Ring
from edge_agent.analytics.detectors.robust import RobustLevel
from edge_agent.analytics.detectors.spike import Spike

N = 6
SCORED = sorted(name for name in REGISTRY if scored(name))


class Runner:
    """One detector alone in a set: every registered detector, chunked or per row, the same way."""

    def __init__(self, name: str, **params: object) -> None:
        limits = {"low": np.full(N, 40.0), "high": np.full(N, 60.0)} if name == "range" else {}
        self.name = name
        self.set = DetectorSet(N, DetectorSettings((name,), {name: params} if params else {}), **limits)  # type: ignore[arg-type]

    def update(self, block: np.ndarray) -> np.ndarray:
        scores, _ = self.set.update(block)
        return scores * float(np.max(self.set.detectors[0].threshold))

    def reset(self, signals: np.ndarray) -> None:
        self.set.reset(signals)


def noisy(seed: int = 3, n: int = 600) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(50.0, 1.0, size=(n, N)) + np.sin(np.arange(n) / 40.0)[:, None]


@pytest.fixture(params=SCORED)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_contract_shape_and_determinism(name: str) -> None:
    block = noisy()
    a, b = Runner(name).update(block), Runner(name).update(block)
    assert a.shape == block.shape
    assert np.array_equal(a, b, equal_nan=True)
    assert (a[np.isfinite(a)] >= 0).all()


def test_contract_block_split_invariance(name: str) -> None:
    block = noisy(seed=11, n=1200)
    block[100:104, 2] = np.nan
    block[700, 4] += 15.0
    whole = Runner(name).update(block)
    det = Runner(name)
    parts = np.concatenate([det.update(p) for p in np.array_split(block, 9)])
    assert np.allclose(whole, parts, equal_nan=True, atol=1e-6)


def test_contract_nan_is_a_gap(name: str) -> None:
    block = noisy(seed=5, n=900)
    gapped = block.copy()
    gapped[600:620, 1] = np.nan
    a, b = Runner(name).update(block), Runner(name).update(gapped)
    assert np.isnan(b[600:620, 1]).all()
    assert np.isfinite(b[:600]).all() and np.isfinite(b[620:]).all()
    others = [0, 2, 3, 4, 5]
    assert np.allclose(a[:, others], b[:, others], atol=1e-6)  # a gap in one signal changes no other


def test_contract_warm_up_scores_zero(name: str) -> None:
    if name == "range":
        pytest.skip("out-of-range has no state to learn: it scores from the first sample")
    scores = Runner(name).update(noisy()[:20])
    assert (scores == 0).all()


def test_contract_reset_forgets_one_signal(name: str) -> None:
    det = Runner(name)
    block = noisy(n=1200)
    det.update(block[:600])
    det.reset(np.array([2]))
    fresh = Runner(name)
    fresh.update(block[:600])
    after, ref = det.update(block[600:]), fresh.update(block[600:])
    assert np.allclose(after[:, [0, 1, 3, 4, 5]], ref[:, [0, 1, 3, 4, 5]], atol=1e-6)
    if name in ("surprise", "level", "spike", "cusum"):
        assert not np.allclose(after[:40, 2], ref[:40, 2])  # signal 2 warms up again


def test_contract_bad_parameters_are_refused_with_the_reason(name: str) -> None:
    for param, declared in REGISTRY[name].params.items():
        bad = -1.0 if declared.ge is not None or declared.gt is not None else None
        if bad is None:
            continue
        with pytest.raises(ValueError, match=rf"{name}\.{param} must be"):
            DetectorSet(N, DetectorSettings((name,), {name: {param: bad}}))


FACTORIES: dict[str, Callable[[], RowDetector]] = {
    "level": lambda: EwmaLevel(1, grace=30),
    "spike": lambda: Spike(1, grace=30),
    "cusum": lambda: Cusum(1),
    "robust": lambda: RobustLevel(1, window=64, every=32),
}


@pytest.mark.parametrize(
    ("detector", "anomaly"),
    [("level", "jump"), ("spike", "spike"), ("cusum", "drift"), ("cusum", "jump"), ("robust", "jump")],
)
def test_earlier_detectors_still_see_what_they_saw(detector: str, anomaly: str) -> None:
    rng = np.random.default_rng(21)
    x = rng.normal(10.0, 0.5, size=(800, 1))
    if anomaly == "jump":
        x[500:] += 5.0
    elif anomaly == "spike":
        x[500] += 6.0
    else:
        x[500:] += np.arange(300)[:, None] * 0.05
    det = FACTORIES[detector]()
    scores = det.update(x)[:, 0]
    assert scores[100:500].max() < det.threshold, "noise crossed the threshold"
    assert scores[500:560].max() >= det.threshold, "the anomaly did not"


def ar1(phi: float, n: int, k: int, seed: int) -> np.ndarray:
    """AR(1) series of unit marginal variance (a temperature or pressure loop)."""
    rng = np.random.default_rng(seed)
    e = rng.normal(0, np.sqrt(1 - phi * phi), size=(n, k))
    x = np.empty((n, k))
    x[0] = rng.normal(0, 1, k)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + e[i]
    return 20.0 + x


@pytest.mark.parametrize(
    ("kind", "detector"),
    [("spike", "surprise"), ("shift", "shift"), ("drift", "shift"), ("variance", "variance"), ("stuck", "stuck")],
)
def test_each_kind_is_caught_on_an_autocorrelated_signal_and_nothing_else(kind: str, detector: str) -> None:
    """The default set on AR(1) (phi 0.9): the anomaly raises an alarm named for it, nothing else does."""
    x = ar1(0.9, 4000, 4, seed=31)
    col = 1
    if kind == "spike":
        x[3000, col] += 8.0
    elif kind == "shift":
        x[3000:3300, col] += 4.0
    elif kind == "drift":
        x[3000:3300, col] += np.arange(300) * 0.03
    elif kind == "variance":
        x[3000:3300, col] += np.random.default_rng(5).normal(0, 4.0, 300)
    else:
        x[3000:3150, col] = x[2999, col]
    ts = np.repeat(np.arange(4000, dtype=np.int64)[:, None] * 10**9, 4, axis=1)
    _, _flags, events = AnomalyScorer(4).update(x, ts)
    started = [(e.signal, e.detector, e.start_ns // 10**9) for e in events if e.new]
    assert [s for s in started if s[0] != col] == [], "an alarm on a signal without an anomaly"
    mine = [s for s in started if s[0] == col]
    assert mine and all(3000 <= t < 3400 for _, _, t in mine), mine
    if kind in ("spike", "stuck"):  # a shift of 9 innovations is also a surprise: either may name it
        assert detector in {d for _, d, _ in mine}, mine


@pytest.mark.parametrize(("kind", "detector"), [("shift", "shift"), ("variance", "variance")])
def test_small_persistent_changes_need_the_sums(kind: str, detector: str) -> None:
    """A shift of 1.5 sigma, or noise doubled: no single sample stands out, the sums catch it."""
    rng = np.random.default_rng(17)
    x = 20 + rng.normal(0, 1, (4000, 3))
    if kind == "shift":
        x[3000:3300, 0] += 1.5
    else:
        x[3000:3300, 0] += rng.normal(0, np.sqrt(3.0), 300)
    ts = np.repeat(np.arange(4000, dtype=np.int64)[:, None] * 10**9, 3, axis=1)
    _, _, events = AnomalyScorer(3).update(x, ts)
    started = [(e.signal, e.detector, e.start_ns // 10**9) for e in events if e.new]
    assert [s for s in started if s[0] != 0] == []
    assert any(3000 <= t < 3300 for _, d, t in started), started
    if kind == "shift":  # the shift sum, or the level's departure from its normal
        assert {d for _, d, t in started} <= {"shift", "departure"}, started


def test_a_cycle_is_learnt_and_a_shift_under_it_is_caught() -> None:
    t = np.arange(5000)[:, None]
    x = 10 + 5 * np.sin(2 * np.pi * t / 600) + np.random.default_rng(8).normal(0, 1, (5000, 2))
    x[4000:4300, 0] += 3.0
    detectors = DetectorSet(2)
    scores, _fired = detectors.update(x)
    assert detectors.model is not None and detectors.model.cycle is not None
    assert np.allclose(detectors.model.cycle.period, 600, rtol=0.03)
    assert np.nanmax(scores[1000:, 1]) < 1.0
    assert np.nanmax(scores[4000:4300, 0]) >= 1.0


def test_regimes_keep_their_own_normal() -> None:
    """Running and idle: switching back to a state resumes what was learnt in it, with no alarm."""
    rng = np.random.default_rng(3)
    scorer = AnomalyScorer(1)
    levels, starts = (20.0, 60.0), []
    t0 = 0
    for visit in range(8):
        state = visit % 2
        block = levels[state] + rng.normal(0, 1.0 + state, (400, 1))
        ts = (t0 + np.arange(400, dtype=np.int64))[:, None] * 10**9
        starts += scorer.switch(np.array([0]), state, int(ts[0, 0]))
        _, _, events = scorer.update(block, ts)
        starts += [e for e in events if e.new]
        t0 += 400
    assert starts == []
    assert scorer.detectors.model is not None
    assert scorer.detectors.model.mean[0] == pytest.approx(60.0, abs=0.5)  # the running state's normal


def test_a_temperature_heading_for_its_new_level_after_a_switch_is_not_an_anomaly() -> None:
    """A spindle at 68 degC stops and restarts: each time the temperature heads for the state's level
    (time constant 40 samples, noise 0.3); the transition is neither normal for the state nor an anomaly."""
    rng = np.random.default_rng(11)
    n, tau, target = 40, 40.0, {1: 68.0, 3: 35.0}
    scorer = AnomalyScorer(n)
    temp = np.full(n, 68.0)
    started, t0 = [], 0
    for visit in range(16):
        state, length = (1, 900) if visit % 2 == 0 else (3, 150)
        k = np.arange(1, length + 1)[:, None]
        level = target[state] + (temp - target[state]) * np.exp(-k / tau)
        block = level + rng.normal(0, 0.3, (length, n))
        ts = np.repeat((t0 + np.arange(length, dtype=np.int64))[:, None] * 10**9, n, axis=1)
        started += [(e, t0) for e in scorer.switch(np.arange(n), state, int(ts[0, 0]))]
        _, _, events = scorer.update(block, ts)
        started += [(e, t0) for e in events if e.new]
        temp, t0 = level[-1], t0 + length
    in_transition = [
        (e.signal, e.detector, e.start_ns // 10**9 - t) for e, t in started if e.start_ns // 10**9 - t < 300
    ]
    assert in_transition == []
    assert len(started) <= n * t0 / 10_000  # elsewhere: noise, at most 1 alarm per 10,000 samples


def test_alarms_do_not_depend_on_how_the_stream_is_cut() -> None:
    """A live agent scores a row or two at a time, a replay whole files: the alarm state of every
    row is the same (here: a 4 sd level shift of 600 samples on one of three AR(1) signals of one
    machine, which holds its alarm while it lasts)."""
    rng = np.random.default_rng(5)
    n, rows = 3, 3000
    x = np.zeros((rows, n))
    for i in range(1, rows):
        x[i] = 0.6 * x[i - 1] + rng.normal(0, 1.0, n)
    x[1800:2400, 0] += 4.0 * 1.25  # 4 sds of the AR(1)'s spread (1 / sqrt(1 - 0.36))
    ts = np.repeat(np.arange(rows, dtype=np.int64)[:, None] * 10**9, n, axis=1)

    def flags(cuts: list[int]) -> np.ndarray:
        scorer = AnomalyScorer(n, machines=np.zeros(n, np.intp))
        out = []
        for a, b in zip([0, *cuts], [*cuts, rows], strict=True):
            out.append(scorer.update(x[a:b], ts[a:b])[1])
        return np.concatenate(out)

    whole = flags([])
    assert whole[1800:2400, 0].mean() > 0.9  # held while the shift lasts
    assert not whole[:1800].any()
    one_by_one = flags(list(range(1, rows)))
    assert np.array_equal(one_by_one, whole)
    ragged = np.cumsum(rng.integers(1, 14, rows // 4))
    assert np.array_equal(flags(ragged[ragged < rows].tolist()), whole)


def test_an_alarm_does_not_restart_within_the_cooldown() -> None:
    s = np.zeros((300, 1))
    s[[10, 60, 200], 0] = 2.0
    ts = np.arange(300, dtype=np.int64)[:, None]
    _, events = Alarms(1, on=1.0, off=0.5, k_on=1, k_off=2, cooldown=100).update(s, ts, {})
    assert [e.start_ns for e in events if e.new] == [10, 200]


def test_stuck_learns_the_runs_of_a_slow_device() -> None:
    rng = np.random.default_rng(1)
    x = np.repeat(rng.normal(0, 1, (700, 1)), 5, axis=0)  # updates every 5th poll
    x[3000:3100, 0] = x[2999, 0]
    scores = Runner("stuck").update(np.repeat(x, N, axis=1))[:, 0]
    assert scores[:3000].max() < 1.0
    assert np.argmax(scores >= 1.0) == 2995 + 60  # the run began with the sample at 2995


def test_a_constant_is_not_a_stuck_sensor() -> None:
    assert Runner("stuck").update(np.full((2000, N), 7.0)).max() == 0.0


def test_out_of_range_from_profile_limits() -> None:
    det = OutOfRange(1, low=np.array([0.0]), high=np.array([10.0]))
    assert det.update(np.array([[5.0], [10.0], [12.0], [-1.0]]))[:, 0].tolist() == [0.0, 0.0, 1.2, 1.1]


def test_set_names_the_detector_that_fired() -> None:
    x = 50 + np.random.default_rng(2).normal(0, 1, size=(1000, 3))
    x[800, 0] += 20.0
    x[600:, 2] = x[599, 2]
    ts = np.repeat(np.arange(1000, dtype=np.int64)[:, None], 3, axis=1)
    _, flags, events = AnomalyScorer(3).update(x, ts)
    started = {(e.signal, e.detector) for e in events if e.new}
    assert (0, "surprise") in started
    assert (2, "stuck") in started or (2, "departure") in started  # frozen away from its level: either
    assert not any(e.signal == 1 for e in events)
    assert flags[800, 0] == 1


def test_per_signal_overrides_from_the_configuration() -> None:
    from edge_agent.config.anomaly import anomaly_section_model, anomaly_settings  # noqa: PLC0415

    section = anomaly_section_model().model_validate(
        {"stuck": {"samples": 300}, "signals": {"m1.temp": {"stuck": {"samples": 20}}}}
    )
    settings = anomaly_settings(section, ["m1.temp", "m2.temp"])
    assert settings.detectors.params["stuck"]["samples"].tolist() == [20.0, 300.0]
    x = 50 + np.random.default_rng(4).normal(0, 1, size=(1000, 2))
    x[600:650] = 50.0  # both frozen for 50 samples, at their level
    ts = np.repeat(np.arange(1000, dtype=np.int64)[:, None], 2, axis=1)
    _, _, events = AnomalyScorer(2, settings).update(x, ts)
    assert {(e.signal, e.detector) for e in events if e.new} == {(0, "stuck")}


def test_old_settings_still_run_the_earlier_detectors() -> None:
    settings = AnomalySettings(DetectorSettings(("level", "spike", "cusum")))
    scorer = AnomalyScorer(2, settings)
    assert scorer.detectors.kernel == "per-row"
    assert scorer.detectors.names == ["cusum", "level", "spike"]


def test_alarms_hysteresis_and_k() -> None:
    s = np.array([0.2, 1.2, 0.8, 1.1, 1.3, 0.6, 0.4, 0.3, 0.2, 1.5])[:, None]
    ts = np.arange(10, dtype=np.int64)[:, None]
    alarms = Alarms(1, on=1.0, off=0.5, k_on=2, k_off=2)
    flags, events = alarms.update(s, ts, {})
    assert flags[:, 0].tolist() == [0, 0, 0, 0, 1, 1, 1, 0, 0, 0]
    assert [(e.start_ns, e.end_ns) for e in events] == [(4, 7)]
    with pytest.raises(ValueError, match="below"):
        Alarms(1, on=1.0, off=1.0)


def _reference_alarm(scores: list[float], on: float, off: float, k_on: int, k_off: int) -> list[tuple[int, int, float]]:
    """Hysteresis sample by sample, written plainly: (start index, end index or -1, peak)."""
    out, active, run_on, run_off, start, peak = [], False, 0, 0, 0, 0.0
    for i, x in enumerate(scores):
        if math.isnan(x):
            continue
        if not active:
            run_on = run_on + 1 if x >= on else 0
            if run_on >= k_on:
                active, run_off, start, peak = True, 0, i, x
        else:
            peak = max(peak, x)
            run_off = run_off + 1 if x < off else 0
            if run_off >= k_off:
                active, run_on = False, 0
                out.append((start, i, peak))
    if active:
        out.append((start, -1, peak))
    return out


def test_vectorised_alarms_follow_the_plain_state_machine() -> None:
    rng = np.random.default_rng(12)
    for _ in range(200):
        n, rows = int(rng.integers(1, 6)), int(rng.integers(1, 40))
        k_on, k_off = int(rng.integers(1, 4)), int(rng.integers(1, 5))
        alarms = Alarms(n, 1.0, 0.5, k_on, k_off)
        blocks = [rng.choice([0.1, 0.7, 1.2, 2.0, np.nan], size=(rows, n)) for _ in range(3)]
        events = []
        for b, block in enumerate(blocks):
            ts = np.repeat(np.arange(b * rows, (b + 1) * rows, dtype=np.int64)[:, None], n, axis=1)
            events += alarms.update(block, ts, {})[1]
        whole = np.concatenate(blocks)
        for col in range(n):
            ended = {(e.start_ns, e.end_ns, e.peak) for e in events if e.signal == col and e.end_ns is not None}
            still = [e for e in events if e.signal == col and e.end_ns is None]
            expected = _reference_alarm(whole[:, col].tolist(), 1.0, 0.5, k_on, k_off)
            assert ended == {(s, e, p) for s, e, p in expected if e >= 0}
            assert bool(alarms.active[col]) == (bool(expected) and expected[-1][1] == -1)
            if alarms.active[col]:
                assert still and still[-1].start_ns == expected[-1][0]


def test_gaps_in_a_chunk_teach_the_model_only_the_samples_that_are_there() -> None:
    """Devices report at their own times: the agent's blocks are full of NaN holes.

    The model learns what the valid samples say, whatever the holes: a signal seen at 68 with two
    samples missing learns a level of 68, and its scales are those of the same signal seen whole.
    """
    rng = np.random.default_rng(12)
    x = 68.0 + 0.3 * rng.standard_normal((4000, 2))
    x[:, 1] = x[:, 0]
    x[np.arange(4000) % 8 >= 5, 1] = np.nan  # every chunk of signal 1 misses three samples
    detectors = DetectorSet(2)
    detectors.update(x[:8])
    model = detectors.model
    assert model is not None
    assert model.mean[1] == pytest.approx(float(np.nanmean(x[:8, 1])), abs=1e-6)
    detectors.update(x[8:])
    assert model.mean[1] == pytest.approx(68.0, abs=0.05)
    # The same noise, learnt through the holes: the same autocovariance and residual scales.
    assert model.c0[1] == pytest.approx(model.c0[0], rel=0.35)
    assert np.sqrt(model.var_long[1]) == pytest.approx(np.sqrt(model.var_long[0]), rel=0.35)


def test_the_cycle_ring_keeps_values_within_a_fraction_of_their_span() -> None:
    """The 16-bit ring: signals at very different scales, one that starts at 0, one that drifts far
    from where it started, one with gaps; every value comes back within 1e-4 of its signal's span."""
    rng = np.random.default_rng(4)
    size, n = 64, 5
    truth = np.empty((size, n))
    truth[:, 0] = 1e-6 * (1 + 0.1 * np.sin(np.arange(size)))  # tiny values
    truth[:, 1] = np.r_[0.0, rng.normal(50.0, 5.0, size - 1)]  # starts at exactly 0
    truth[:, 2] = 20.0 + np.arange(size) * 30.0  # drifts from 20 to 1,910
    truth[:, 3] = rng.normal(1e5, 1.0, size)  # large level, small noise
    truth[:, 4] = rng.normal(0.0, 1.0, size)
    truth[::7, 4] = np.nan  # gaps
    ring = Ring(size, n)
    for slot in range(size):
        ring.put(slot, truth[slot])
    back = ring.rows(np.arange(size), np.arange(n))
    assert np.array_equal(np.isnan(back), np.isnan(truth))
    span = np.nanmax(truth, axis=0) - np.nanmin(truth, axis=0)
    assert (np.nanmax(np.abs(back - truth), axis=0) <= 1e-4 * span).all()
    ring.clear(np.array([2]))
    assert np.isnan(ring.rows(np.arange(size), np.array([2]))).all()
