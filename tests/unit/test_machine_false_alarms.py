"""A machine's score alarms on two chunks in a row over its threshold, not one: in normal operation
one chunk over it is mostly the heavy tail of levels measured in sds estimated from few chunks."""

from __future__ import annotations

import numpy as np

from edge_agent.analytics.anomaly import AnomalyScorer

MACHINES, WIDTH, ROWS = 50, 8, 1600


def machine_alarms_per_1000_chunks(seed: int) -> float:
    """Machine-score alarms started per 1,000 machine-chunks on normal operation only: machines of
    8 AR(1) loops (phi 0.8, unit level sd) under sensor noise of 0.3, 1,600 samples each."""
    rng = np.random.default_rng(seed)
    n = MACHINES * WIDTH
    z = np.zeros((ROWS, n))
    e = rng.normal(0.0, 0.6, (ROWS, n))
    for i in range(1, ROWS):
        z[i] = 0.8 * z[i - 1] + e[i]
    x = 10.0 + z + rng.normal(0.0, 0.3, z.shape)
    ts = np.repeat(np.arange(ROWS, dtype=np.int64)[:, None] * 10**9, n, axis=1)
    scorer = AnomalyScorer(n, machines=np.arange(n) // WIDTH)
    scorer.update(x, ts)
    started = [e for e in scorer.last_machines.events if e.detector == "machine" and e.new]
    return 1000.0 * len(started) / (MACHINES * ROWS / 8)


def test_the_machine_score_raises_few_false_alarms_in_normal_operation() -> None:
    rate = float(np.mean([machine_alarms_per_1000_chunks(seed) for seed in range(4)]))
    # When one chunk over the threshold was enough, these 4 seeds started 2.0 to 3.2 alarms per
    # 1,000 machine-chunks (mean 2.6); with two in a row 1.2 to 1.6 (mean 1.4). The nominal rate
    # of the threshold is 0.1: the score is still not calibrated (docs/anomaly.md).
    assert rate < 2.0, rate
