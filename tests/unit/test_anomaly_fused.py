"""The default set's fused path: the detector contract at the set level, and its agreement with
the per-detector reference path (``DetectorSettings(fused=False)``)."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.anomaly import AnomalyScorer, AnomalySettings
from analytics.detectors import DetectorSet, DetectorSettings
from analytics.detectors.fused import PERIOD

N = 12
REFERENCE = DetectorSettings(fused=False)


def plant(seed: int = 3, n: int = 1200) -> np.ndarray:
    """Noisy, periodic signals with gaps: every 7th sample of signal 4 and a long gap on signal 5."""
    rng = np.random.default_rng(seed)
    x = rng.normal(50.0, 1.0, size=(n, N)) + np.sin(np.arange(n) / 40.0)[:, None]
    x[::7, 4] = np.nan
    x[300:340, 5] = np.nan
    x[:, 6] = 1e6 + rng.normal(0.0, 0.01, n)  # a large reading with a fine resolution
    return x


def test_the_default_set_takes_the_fused_path_and_others_do_not() -> None:
    assert DetectorSet(3)._fused is not None
    assert DetectorSet(3, REFERENCE)._fused is None
    assert DetectorSet(3, DetectorSettings(detectors=("level", "spike")))._fused is None
    assert DetectorSet(3, DetectorSettings(detectors=(*DetectorSettings().detectors, "robust")))._fused is None


def test_a_block_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\[samples, 3\]"):
        DetectorSet(3).update(np.zeros((10, 4)))
    with pytest.raises(ValueError, match="out has shape"):
        DetectorSet(3).update(np.zeros((10, 3)), out=np.zeros((9, 3)))


def test_shape_nan_and_determinism() -> None:
    x = plant()
    a, b = DetectorSet(N).update(x)[0], DetectorSet(N).update(x)[0]
    assert a.shape == x.shape
    assert np.array_equal(a, b, equal_nan=True)
    assert np.array_equal(np.isnan(a), np.isnan(x))  # a score for every sample, NaN for every gap
    assert (a[np.isfinite(a)] >= 0).all()


@pytest.mark.parametrize("pieces", [2, 9, 37, 1200])
def test_block_split_invariance(pieces: int) -> None:
    x = plant(seed=11)
    whole = DetectorSet(N).update(x)[0]
    det = DetectorSet(N)
    parts = np.concatenate([det.update(p)[0] for p in np.array_split(x, pieces)])
    # Only float32 rounding differs (the period's sums are added in other groupings).
    np.testing.assert_allclose(parts, whole, rtol=1e-5, atol=1e-5)


def test_a_gap_in_one_signal_changes_no_other() -> None:
    x = plant(seed=5)
    gapped = x.copy()
    gapped[500:560, 1] = np.nan
    gapped[900, 2] = np.nan
    a, b = DetectorSet(N).update(x)[0], DetectorSet(N).update(gapped)[0]
    others = [i for i in range(N) if i not in (1, 2)]
    # Up to float32 rounding: how many columns need a look of their own picks the arithmetic.
    np.testing.assert_allclose(b[:, others], a[:, others], rtol=1e-5, atol=1e-5)
    assert np.isnan(b[500:560, 1]).all() and np.isfinite(b[560:, 1]).all()


def test_a_reset_forgets_one_signal_and_no_other() -> None:
    x = plant(seed=8)
    ref = DetectorSet(N).update(x)[0]
    det = DetectorSet(N)
    head = det.update(x[:603])[0]  # a reset in the middle of a period
    det.reset(np.array([2, 3]))
    tail = det.update(x[603:])[0]
    after = np.concatenate([head, tail])
    others = [i for i in range(N) if i not in (2, 3)]
    np.testing.assert_allclose(after[:, others], ref[:, others], rtol=1e-5, atol=1e-5)
    # The reset signals warm up again: no level, spike or CUSUM score for grace samples.
    assert (tail[:30, 2:4] == 0).all()
    assert not np.allclose(after[603:640, 2:4], ref[603:640, 2:4])


def test_warm_up_scores_zero_then_scoring_starts_at_a_period_boundary() -> None:
    x = plant(seed=2)
    x[:, 4] = np.where(np.arange(x.shape[0]) % 2 == 0, x[:, 4], np.nan)  # half the samples
    scores = DetectorSet(N).update(x)[0]
    assert (np.nan_to_num(scores[:32]) == 0).all()  # 30 samples, to the next period boundary
    # Signal 4 has a sample every other row: its warm-up takes twice as many rows.
    assert (np.nan_to_num(scores[:60, 4]) == 0).all()
    assert np.nanmax(scores[64:, 4]) > 0


def test_large_readings_keep_their_resolution() -> None:
    """float32 on x - mean: a counter at 1e6 kWh scores as the same noise would at 0."""
    rng = np.random.default_rng(4)
    noise = rng.normal(0.0, 0.01, size=(2000, 2))
    # No level floor: by design it would blind the level to noise 1e-8 of the reading.
    settings = DetectorSettings(params={"level": {"rel_floor": 0.0}})
    at_zero = DetectorSet(2, settings).update(noise)[0]
    at_million = DetectorSet(2, settings).update(noise + 1e6)[0]
    np.testing.assert_allclose(at_million[40:], at_zero[40:], atol=0.02)
    # Without the offset, float32's spacing at 1e6 (0.0625) would swallow this noise whole.
    assert np.median(at_million[40:]) > 0.05


def test_follows_the_reference_path_closely() -> None:
    x = plant(seed=9, n=3000)
    fused = DetectorSet(N).update(x)[0][200:]
    reference = DetectorSet(N, REFERENCE).update(x)[0][200:]
    diff = np.abs(fused - reference)[np.isfinite(fused)]
    # Frozen scales move a score a little, never an order of magnitude.
    assert np.median(diff) < 0.01
    assert np.quantile(diff, 0.99) < 0.1


@pytest.mark.parametrize("fused", [True, False])
def test_both_paths_raise_an_alarm_for_each_anomaly_and_none_elsewhere(fused: bool) -> None:
    rng = np.random.default_rng(13)
    n = 3000
    x = rng.normal(20.0, 1.0, size=(n, 8)) + np.sin(2 * np.pi * np.arange(n) / 1000)[:, None]
    x[1500, 1] += 8.0  # spike
    x[1500:1800, 2] += 4.0  # level shift
    x[1500:1800, 3] += 0.03 * np.arange(300)  # drift
    x[1500:1650, 4] = x[1499, 4]  # stuck
    x[1500:1800, 5] += rng.normal(0.0, 4.0, 300)  # variance
    x[::5, 6] = np.nan  # clean, with gaps
    ts = np.repeat(np.arange(n, dtype=np.int64)[:, None], 8, axis=1)
    settings = AnomalySettings(detectors=DetectorSettings(fused=fused))
    _, _, events = AnomalyScorer(8, settings).update(x, ts)
    starts = {(e.signal, e.start_ns) for e in events if e.new}
    for signal in range(1, 6):
        assert any(s == signal and 1500 <= t < 1850 for s, t in starts), f"signal {signal} missed"
    assert not [(s, t) for s, t in starts if s in (0, 6, 7) or t < 1500], "false alarm"


def test_the_detector_that_fired_is_named() -> None:
    x = np.random.default_rng(2).normal(0, 1, size=(400, 3))
    x[300, 0] += 20.0
    x[200:, 2] = x[199, 2]
    _, fired = DetectorSet(3).update(x)
    assert fired[(300, 0)] in ("level", "spike", "cusum")
    assert {fired[(i, 2)] for i in range(260, 400)} == {"stuck"}
    assert PERIOD == 8


def test_every_parameter_may_differ_per_signal() -> None:
    """Per-signal overrides (arrays) reach the fused path as they reach the per-detector one: a
    longer warm-up on signal 1, thresholds ten times higher on signal 3, a stuck tolerance on
    signal 7; with gaps, repeats and a reset on the way."""
    n = N
    per = np.ones(n)
    tenfold = np.where(np.arange(n) == 3, 10.0, 1.0)
    params = {
        "level": {
            "alpha": 0.02 * per,
            "var_alpha": 0.004 * per,
            "grace": np.where(np.arange(n) == 1, 90, 30),
            "threshold": 6.0 * tenfold,
            "rel_floor": 1e-4 * per,
        },
        "spike": {
            "alpha": 0.02 * per,
            "grace": np.where(np.arange(n) == 1, 90, 30),
            "threshold": 5.0 * tenfold,
        },
        "cusum": {"k": 1.0 * per, "threshold": 25.0 * tenfold, "k_var": 3.0 * per},
        "stuck": {"samples": 60 * per, "tolerance": np.where(np.arange(n) == 7, 0.5, 0.0)},
    }
    x = plant(seed=6)
    x[600, 3] += 12.0  # a spike the raised thresholds on signal 3 let pass, and signal 2 does not
    x[600, 2] += 12.0
    x[800:900, 7] = 50.0 + 0.1 * np.sin(np.arange(100))  # moves, but within signal 7's tolerance
    x[700:720, 9] = x[699, 9]  # a short repeat
    settings = DetectorSettings(params=params)
    det = DetectorSet(N, settings)
    head = det.update(x[:650])[0]
    det.reset(np.array([10]))
    scores = np.concatenate([head, det.update(x[650:])[0]])
    reference = DetectorSet(N, DetectorSettings(params=params, fused=False)).update(x)[0]
    assert (np.nan_to_num(scores[:88, 1]) == 0).all()  # signal 1 warms up for 90 samples
    assert scores[600, 2] > 1.0 and scores[600, 3] < 1.0
    assert reference[600, 2] > 1.0 and reference[600, 3] < 1.0
    assert scores[860:900, 7].min() > 0.5  # counted as stuck within the tolerance
    assert (np.nan_to_num(scores[650:680, 10]) == 0).all()  # reset: warming up again
    same_history = [i for i in range(N) if i != 10]
    diff = np.abs(scores - reference)[100:, same_history]
    # Per signal: a parameter applied to the wrong signal would move its scores tenfold.
    assert (np.nanmedian(diff, axis=0) < 0.02).all()
