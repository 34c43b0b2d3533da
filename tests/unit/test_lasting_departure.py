"""A slow drift is in alarm while it lasts: the lasting departure and the spread that does not learn it."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from edge_agent.analytics.anomaly import AnomalyScorer, AnomalySettings
from edge_agent.config.anomaly import anomaly_section_model, anomaly_settings

SIGNALS = 8
START, LENGTH = 3000, 1500


def drifting_loops(seed: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Eight AR(1) loops (phi 0.8, level sd 1, one sample a second) that drift 3.5 sd over 1,500 samples
    from sample 3,000, then return at once."""
    rng = np.random.default_rng(seed)
    n = 7000
    x = np.zeros((n, SIGNALS))
    e = rng.normal(0.0, 0.6, (n, SIGNALS))
    for i in range(1, n):
        x[i] = 0.8 * x[i - 1] + e[i]
    x[START : START + LENGTH] += 3.5 * np.arange(1, LENGTH + 1)[:, None] / LENGTH
    ts = np.arange(n, dtype=np.int64)[:, None].repeat(SIGNALS, 1) * 10**9
    return 10.0 + x, ts


def test_a_slow_drift_is_in_alarm_for_much_of_its_course() -> None:
    x, ts = drifting_loops(3)
    _, flags, events = AnomalyScorer(SIGNALS).update(x, ts)
    during = flags[START : START + LENGTH].mean(axis=0)
    # The drift reaches 1 sd a third of the way in: before that it is noise. About half of it is in
    # alarm (0.35 to 0.54 per signal with this seed).
    assert during.mean() >= 0.35, during
    assert not flags[:START].any(), "an alarm before the drift"
    assert "departure" in {e.detector for e in events if START <= e.start_ns // 10**9 < START + LENGTH}
    # Without the lasting departure, the forecast and the normal follow most drifts: they alarm when
    # the signal jumps back, not while it drifts.
    _, without, _ = AnomalyScorer(SIGNALS, AnomalySettings(departure_lasting=0.0)).update(x, ts)
    assert without[START : START + LENGTH].mean() < 0.2
    assert during.mean() > 2 * without[START : START + LENGTH].mean()


def test_the_lasting_departure_is_configured_under_alarm() -> None:
    section = anomaly_section_model().model_validate({"alarm": {"departure_lasting": 4.5, "departure_samples": 120}})
    settings = anomaly_settings(section, ["press.temp"])
    assert (settings.departure_lasting, settings.departure_samples) == (4.5, 120)
    off = anomaly_settings(anomaly_section_model().model_validate({"alarm": {"departure_lasting": 0}}), ["a.b"])
    assert off.departure_lasting == 0.0
