"""EWMA z-score: warm-up, gaps, spikes, determinism and block-split invariance."""

from __future__ import annotations

import numpy as np

from analytics.anomaly import EwmaZScore


def noisy(seed: int = 3, n: int = 400, signals: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).normal(50.0, 1.0, size=(n, signals))


def test_warm_up_scores_zero() -> None:
    det = EwmaZScore(5, grace=40)
    scores = det.update(noisy())
    assert (scores[:40] == 0).all()
    assert (scores[40:] > 0).any()


def test_spike_scores_high_and_noise_low() -> None:
    block = noisy()
    block[300, 2] += 15.0
    scores = EwmaZScore(5, alpha=0.02, grace=30).update(block)
    assert scores[300, 2] > 8
    clean = np.delete(scores[100:], 200, axis=0)
    assert np.percentile(clean, 99) < 4


def test_nan_is_a_gap_that_neither_scores_nor_changes_state() -> None:
    block = noisy()
    gapped = block.copy()
    gapped[200:210, 1] = np.nan
    a, b = EwmaZScore(5), EwmaZScore(5)
    sa, sb = a.update(block), b.update(gapped)
    assert np.isnan(sb[200:210, 1]).all()
    # Other signals are untouched by the gap.
    assert np.array_equal(sa[:, [0, 2, 3, 4]], sb[:, [0, 2, 3, 4]])
    assert np.isfinite(b.mean).all() and np.isfinite(b.var).all()


def test_block_split_invariance_and_determinism() -> None:
    block = noisy(seed=11)
    whole = EwmaZScore(5).update(block)
    det = EwmaZScore(5)
    parts = np.concatenate([det.update(p) for p in np.array_split(block, 7)])
    assert np.allclose(whole, parts, equal_nan=True)
    assert np.array_equal(whole, EwmaZScore(5).update(block), equal_nan=True)


def test_reset_one_signal() -> None:
    det = EwmaZScore(3, grace=5)
    det.update(noisy(signals=3, n=50))
    det.reset(np.array([1]))
    assert det.count.tolist()[1] == 0 and det.count[0] == 50
