"""One wild reading (a swapped column, a bit error) is a spike: its alarm, and its machine's
incident, end when the readings are back, not dozens of chunks later."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from edge_agent.analytics.anomaly import AnomalyScorer

ROWS, SIGNALS, WILD_AT = 1600, 4, 1000


def machine(seed: int) -> NDArray[np.float64]:
    """Four signals of one machine: an AR(1) loop (phi 0.95) under sensor noise, about 1 A."""
    rng = np.random.default_rng(seed)
    z = np.zeros((ROWS, SIGNALS))
    e = rng.normal(0.0, 0.05, (ROWS, SIGNALS))
    for i in range(1, ROWS):
        z[i] = 0.95 * z[i - 1] + e[i]
    return 1.0 + z + rng.normal(0.0, 0.22, (ROWS, SIGNALS))


def scorer_for(x: NDArray[np.float64]) -> tuple[AnomalyScorer, NDArray[np.int64]]:
    ts = np.repeat(np.arange(ROWS, dtype=np.int64)[:, None] * 10**9, SIGNALS, axis=1)
    return AnomalyScorer(SIGNALS, machines=np.zeros(SIGNALS, np.intp)), ts


def incident_rows(x: NDArray[np.float64]) -> NDArray[np.intp]:
    scorer, ts = scorer_for(x)
    scorer.update(x, ts)
    return np.flatnonzero(scorer.last_machines.incident[:, 0])


def normal_moment(x: NDArray[np.float64]) -> int:
    """The first chunk start from ``WILD_AT`` on at which signal 0's level is within 1 sd of its
    normal: an alarm is held while the level is more than 2 sds away (a wild reading in the
    middle of a wide natural swing is held until the swing is over)."""
    scorer, ts = scorer_for(x)
    scorer.update(x[:WILD_AT], ts[:WILD_AT])
    for at in range(WILD_AT, ROWS - 200, 8):
        if abs(scorer.condition.level[0]) < 1.0:
            return at
        scorer.update(x[at : at + 8], ts[at : at + 8])
    raise AssertionError("signal 0 never came within 1 sd of its normal")


def test_one_wild_reading_is_an_incident_of_a_few_samples() -> None:
    for seed in range(6):
        x = machine(seed)
        quiet = incident_rows(x)
        at = normal_moment(x)
        x[at, 0] = 230.0  # the voltage's reading in the current's column
        new = np.setdiff1d(incident_rows(x), quiet)
        assert at in new, f"seed {seed}: the wild reading raised no incident"
        # The readings are back at once; the incident ends after the alarm's own off-delay (5
        # samples), or after the few chunks the condition's spread takes to forget the wild
        # residuals (27 to 43 samples). Before each sample counted at most 8 sds toward the
        # autocovariances, the swollen variance flattened the forecast for hundreds of samples:
        # 7 of 12 seeds were in alarm for 230 to 500 samples.
        assert new.max() - at < 48, f"seed {seed}: the incident lasted to row {new.max()} after row {at}"


def test_a_signal_constant_for_hours_learns_its_scale_when_it_starts_to_move() -> None:
    """A setpoint that has not moved for 30,000 samples has no variance left to bound a reading
    by: its first moves are learnt as they are, not bounded to 8 sds of nothing (which kept its
    variance, and its mean's bound, at 0 for ever)."""
    rng = np.random.default_rng(1)
    x = np.full(40_000, 5.0)
    x[30_000:] = 6.0 + rng.normal(0.0, 0.1, 10_000)
    ts = np.arange(x.shape[0], dtype=np.int64)[:, None] * 10**9
    scorer = AnomalyScorer(1)
    scorer.update(x[:30_000, None], ts[:30_000])
    model = scorer.detectors.model
    assert model is not None
    assert model.c0[0] < 1e-200, "the test needs a variance that has decayed to nothing"
    scorer.update(x[30_000:, None], ts[30_000:])
    assert model.c0[0] > 0.01, model.c0[0]
    assert model.mean[0] > 5.2, model.mean[0]
