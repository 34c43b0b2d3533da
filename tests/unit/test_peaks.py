"""Highest score per signal and interval: the same points however the stream is cut into ticks."""

from __future__ import annotations

import numpy as np

from edge_agent.runtime.peaks import PeakPerInterval


def _expected(col: np.ndarray, ts: np.ndarray, score: np.ndarray, every: int) -> set[tuple[int, int, float]]:
    out = set()
    for c in np.unique(col).tolist():
        for k in np.unique(ts[col == c] // every).tolist():
            pick = np.flatnonzero((col == c) & (ts // every == k))
            best = pick[np.argmax(score[pick])]  # argmax: the first at the peak
            out.add((c, int(ts[best]), float(score[best])))
    return out


def test_peaks_do_not_depend_on_how_ticks_cut_the_stream() -> None:
    rng = np.random.default_rng(3)
    for _ in range(100):
        n, every = int(rng.integers(1, 5)), int(rng.integers(1, 20))
        ts_all = np.sort(rng.integers(0, 200, size=(60, n)), axis=0)
        scores = rng.choice([0.0, 0.5, 1.0, 2.0], size=(60, n))
        cuts = np.sort(rng.choice(np.arange(1, 60), size=int(rng.integers(0, 8)), replace=False))
        peaks, got = PeakPerInterval(n, every), set()
        for rows in np.split(np.arange(60), cuts):
            if rows.shape[0] == 0:
                continue
            col = np.repeat(np.arange(n), rows.shape[0])
            ts = ts_all[rows].T.reshape(-1)
            s = scores[rows].T.reshape(-1)
            got |= set(zip(*[a.tolist() for a in peaks.add(col, ts, s)], strict=True))
        got |= set(zip(*[a.tolist() for a in peaks.flush()], strict=True))
        col = np.repeat(np.arange(n), 60)
        assert got == _expected(col, ts_all.T.reshape(-1), scores.T.reshape(-1), every)


def test_interval_zero_passes_every_score() -> None:
    peaks = PeakPerInterval(1, 0)
    col, ts, s = np.zeros(3, np.intp), np.array([1, 2, 3]), np.array([0.1, 0.2, 0.3])
    assert [a.tolist() for a in peaks.add(col, ts, s)] == [[0, 0, 0], [1, 2, 3], [0.1, 0.2, 0.3]]
    assert peaks.flush()[0].shape == (0,)
