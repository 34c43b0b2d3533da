"""Detectors: the shared contract for every registered detector, then each one's own behaviour."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from analytics.alarms import Alarms
from analytics.anomaly import AnomalyScorer
from analytics.detectors import (
    REGISTRY,
    Cusum,
    EwmaLevel,
    OutOfRange,
    RobustLevel,
    RowDetector,
    Spike,
    Stuck,
)

N = 6


def make(name: str) -> RowDetector:
    if name == "range":
        return OutOfRange(N, low=np.full(N, 40.0), high=np.full(N, 60.0))
    return REGISTRY[name](N)


def noisy(seed: int = 3, n: int = 600) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(50.0, 1.0, size=(n, N)) + np.sin(np.arange(n) / 40.0)[:, None]


@pytest.fixture(params=sorted(REGISTRY))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_contract_shape_and_determinism(name: str) -> None:
    block = noisy()
    a, b = make(name).update(block), make(name).update(block)
    assert a.shape == block.shape
    assert np.array_equal(a, b, equal_nan=True)
    assert (a[np.isfinite(a)] >= 0).all()


def test_contract_block_split_invariance(name: str) -> None:
    block = noisy(seed=11)
    block[100:104, 2] = np.nan
    whole = make(name).update(block)
    det = make(name)
    parts = np.concatenate([det.update(p) for p in np.array_split(block, 9)])
    assert np.allclose(whole, parts, equal_nan=True)


def test_contract_nan_is_a_gap(name: str) -> None:
    block = noisy(seed=5)
    gapped = block.copy()
    gapped[300:320, 1] = np.nan
    a, b = make(name).update(block), make(name).update(gapped)
    assert np.isnan(b[300:320, 1]).all()
    assert np.isfinite(b[:300]).all() and np.isfinite(b[320:]).all()
    others = [0, 2, 3, 4, 5]
    assert np.allclose(a[:, others], b[:, others])  # a gap in one signal changes no other


def test_contract_warm_up_scores_zero(name: str) -> None:
    if name == "range":
        pytest.skip("out-of-range has no state to learn: it scores from the first sample")
    scores = make(name).update(noisy()[:20])
    assert (scores == 0).all() or (name == "stuck" and (scores < 1).all())


def test_contract_reset_forgets_one_signal(name: str) -> None:
    det = make(name)
    block = noisy()
    det.update(block[:300])
    det.reset(np.array([2]))
    fresh = make(name)
    fresh.update(block[:300])
    after, ref = det.update(block[300:]), fresh.update(block[300:])
    assert np.allclose(after[:, [0, 1, 3, 4, 5]], ref[:, [0, 1, 3, 4, 5]])
    if name not in ("range", "robust", "stuck"):
        assert not np.allclose(after[:10, 2], ref[:10, 2])


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
def test_known_anomalies_cross_the_threshold_and_noise_does_not(detector: str, anomaly: str) -> None:
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


def test_level_score_is_the_z_score() -> None:
    det = EwmaLevel(1, alpha=0.5, var_alpha=0.5, grace=2, rel_floor=0.0)
    scores = det.update(np.array([[0.0], [2.0], [1.0], [5.0]]))[:, 0]
    # after 0, 2: mean 1, variance 1 (running); after 1: mean 1, var (1 - .5)(1 + 0) = 0.5
    assert scores[:2].tolist() == [0.0, 0.0]
    assert scores[2] == pytest.approx(0.0)
    assert scores[3] == pytest.approx(4.0 / np.sqrt(0.5))


def test_stuck_counts_repeats_and_a_gap_neither_extends_nor_breaks() -> None:
    x = np.array([[1.0], [2.0], [2.0], [np.nan], [2.0], [2.0], [3.0]])
    scores = Stuck(1, samples=4).update(x)[:, 0]
    assert np.isnan(scores[3])
    assert np.nan_to_num(scores).tolist() == [0.0, 0.0, 0.25, 0.0, 0.5, 0.75, 0.0]


def test_stuck_refuses_a_negative_tolerance_or_too_few_samples() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        Stuck(2, tolerance=np.array([0.1, -0.1]))
    with pytest.raises(ValueError, match="at least 2"):
        Stuck(1, samples=1)


def test_out_of_range_from_profile_limits() -> None:
    det = OutOfRange(1, low=np.array([0.0]), high=np.array([10.0]))
    assert det.update(np.array([[5.0], [10.0], [12.0], [-1.0]]))[:, 0].tolist() == [0.0, 0.0, 1.2, 1.1]


def test_set_names_the_detector_that_fired() -> None:
    x = np.random.default_rng(2).normal(0, 1, size=(400, 3))
    x[300, 0] += 20.0
    x[200:, 2] = x[199, 2]
    scorer = AnomalyScorer(3)
    ts = np.repeat(np.arange(400, dtype=np.int64)[:, None], 3, axis=1)
    _, flags, events = scorer.update(x, ts)
    started = {(e.signal, e.detector) for e in events}
    assert {d for sig, d in started if sig == 0} <= {"level", "spike", "cusum"}
    assert any(sig == 0 for sig, _ in started)
    assert (2, "stuck") in started
    assert not any(e.signal == 1 for e in events)
    assert flags[301, 0] == 1  # confirmed by a second sample over the threshold


def test_per_signal_overrides_from_the_configuration() -> None:
    from edge_agent.config.anomaly import anomaly_section_model, anomaly_settings  # noqa: PLC0415

    section = anomaly_section_model().model_validate(
        {"stuck": {"samples": 300}, "signals": {"m1.temp": {"stuck": {"samples": 20}}}}
    )
    settings = anomaly_settings(section, ["m1.temp", "m2.temp"])
    assert settings.detectors.params["stuck"]["samples"].tolist() == [20.0, 300.0]
    x = np.random.default_rng(4).normal(0, 1, size=(200, 2))
    x[100:150] = x[99]  # both frozen for 50 samples
    ts = np.repeat(np.arange(200, dtype=np.int64)[:, None], 2, axis=1)
    _, _, events = AnomalyScorer(2, settings).update(x, ts)
    assert (events[0].signal, events[0].detector) == (0, "stuck")
    assert all(e.signal == 0 for e in events)


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
