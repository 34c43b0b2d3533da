"""A machine with a fault on some signals while its other signals wander by nature, scored whole:
the recordings of the machine-hold and wandering-signal tests."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from edge_agent.analytics.anomaly import AnomalyScorer


def machine_incident(
    seed: int, phi: NDArray[np.float64], rows: int, start: int, end: int, faulty: int = 3, size: float = 3.0
) -> NDArray[np.bool_]:
    """The incident state, row by row, of one machine whose signals are AR(1) loops of unit level
    sd (``phi`` per sample, one per signal) under sensor noise of 0.3, the first ``faulty`` of them
    shifted by ``size`` sds from row ``start`` to ``end`` (1 Hz rows)."""
    rng = np.random.default_rng(seed)
    x, z = np.zeros((rows, phi.shape[0])), np.zeros(phi.shape[0])
    for i in range(rows):
        z = phi * z + rng.normal(0.0, np.sqrt(1.0 - phi * phi))
        x[i] = z
    x += 20.0 + rng.normal(0.0, 0.3, x.shape)
    x[start:end, :faulty] += size
    ts = np.repeat(np.arange(rows, dtype=np.int64)[:, None] * 10**9, phi.shape[0], axis=1)
    scorer = AnomalyScorer(phi.shape[0], machines=np.zeros(phi.shape[0], np.intp))
    scorer.update(x, ts)
    incident: NDArray[np.bool_] = scorer.last_machines.incident[:, 0].astype(bool)
    return incident
