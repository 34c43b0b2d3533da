"""Shift: a departure from the signal's long-term normal that persists (level shifts, drifts).

Score (higher is more anomalous): a two-sided CUSUM, as in :mod:`analytics.detectors.deviation`,
of the residual against the *long-term* expectation (the signal's cycle, else its day profile,
else its slow mean; :mod:`analytics.detectors.forecast`), in units of that residual's scale
inflated for its autocorrelation (an autocorrelated signal wanders further by itself). A short-term
forecast follows a shifted or drifting signal within a few samples; this sum does not, so it
catches a level that has moved and a slow drift, also on cyclic signals. A sum that reaches the
decision interval ``threshold`` starts again from 0.

Examples
--------
>>> import numpy as np
>>> from edge_agent.analytics.detectors import DetectorSet, DetectorSettings
>>> rng = np.random.default_rng(8)
>>> t = np.arange(4000)[:, None]
>>> x = 5 * np.sin(2 * np.pi * t / 600) + rng.normal(0, 1, (4000, 2))
>>> x[3000:3300, 1] += 3.0                      # a shift of 3 noise units under a cycle of 5
>>> scores, _ = DetectorSet(2, DetectorSettings(("shift",))).update(x)
>>> bool(np.nanmax(scores[2000:3000]) < 1.0), bool(np.nanmax(scores[3000:3300, 1]) >= 1.0)
(True, True)
"""

from __future__ import annotations

from typing import ClassVar

from edge_agent.analytics.detectors.base import Param, register
from edge_agent.analytics.detectors.deviation import ResidualSum


@register
class Shift(ResidualSum):
    name: ClassVar[str] = "shift"
    residual: ClassVar[str] = "long"
    params: ClassVar[dict[str, Param]] = {
        "k": Param(0.5, "allowance per sample, in inflated scales", ge=0),
        "threshold": Param(20.0, "decision interval h, in inflated scales", gt=0),
    }
