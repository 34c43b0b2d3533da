"""A signal that wanders slowly by nature has shown only part of its range in a short history: its
level's variance, measured around a normal learnt from the same few chunks, errs low, and the
condition corrects it by the chunks' autocorrelation (``Condition.widen``)."""

from __future__ import annotations

import numpy as np

from edge_agent.analytics.condition import Condition
from edge_agent.analytics.detectors.season import PERIOD
from tests.unit.machine_faults import machine_incident


def chunk_means(rng: np.random.Generator, rho: float, chunks: int, signals: int) -> np.ndarray:
    """``[chunks, signals]`` chunk means of an AR(1) of lag-1 autocorrelation ``rho`` per chunk."""
    out, z = np.empty((chunks, signals)), np.zeros(signals)
    for k in range(chunks):
        z = rho * z + rng.normal(0.0, np.sqrt(1.0 - rho * rho), signals)
        out[k] = z
    return 20.0 + out


def factor_after(rho: float, chunks: int) -> np.ndarray:
    rng = np.random.default_rng(5)
    condition = Condition(200)
    for mean in chunk_means(rng, rho, chunks, 200):
        condition.observe(mean, np.ones(200), PERIOD, np.zeros(200, bool))
    return condition.widen


def test_independent_chunks_keep_their_variance_and_wandering_ones_widen_it() -> None:
    independent = factor_after(0.0, 64)
    assert float(np.median(independent)) < 1.05, np.median(independent)
    wandering = factor_after(0.95, 64)  # a time constant of 20 chunks: a third of the history
    assert float(np.median(wandering)) > 1.5, np.median(wandering)
    assert float(wandering.max()) <= 4.0  # at most fourfold
    # With a long history the same wander is known: the correction fades.
    assert float(np.median(factor_after(0.95, 600))) < float(np.median(wandering))


ROWS, START, END = 1300, 650, 1000


def machine_in_alarm(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The machine's incident and the fault's rows in a recording as short as a test rig's
    (1,300 samples, the fault from 650 to 1,000): a fault of 3 sds on 3 of 6 signals, while the
    other 3 wander by nature (phi 0.997 per sample, a time constant of 333 samples: longer than
    the history before the fault). All have unit level sd under sensor noise of 0.3."""
    incident = machine_incident(seed, np.array([0.8, 0.8, 0.8, 0.997, 0.997, 0.997]), ROWS, START, END)
    fault = np.zeros(ROWS, bool)
    fault[START:END] = True
    return incident, fault


def test_short_recordings_with_wandering_signals() -> None:
    found, faults = zip(*(machine_in_alarm(seed) for seed in range(24)), strict=True)
    incident, fault = np.concatenate([f[300:] for f in found]), np.concatenate([f[300:] for f in faults])
    f1 = 2.0 * (incident & fault).sum() / (incident.sum() + fault.sum())
    before = np.mean([f[300:START].mean() for f in found])
    # Without the correction: F1 0.797, and 7.5 % of the rows before the fault in alarm.
    assert f1 > 0.82, f1
    assert before < 0.05, before
    assert incident[fault].mean() > 0.95
