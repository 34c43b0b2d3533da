"""From the ``anomaly:`` configuration to the scorer's settings, with per-signal overrides as arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

from analytics.anomaly import AnomalySettings
from analytics.detectors import DetectorSettings
from edge_agent.config import AnomalySection, DetectorOverrides
from edge_agent.yaml_source import ConfigError

_DETECTORS = ("level", "spike", "cusum", "stuck", "robust")


def anomaly_settings(section: AnomalySection, signal_keys: list[str]) -> AnomalySettings:
    """Settings for signals ``signal_keys`` (``device.signal``) in column order.

    A parameter overridden for any signal becomes an array with one value per signal; the
    others stay scalars (or the detector's default when not set at all).
    """
    params: dict[str, dict[str, Any]] = {}
    for name in _DETECTORS:
        base: dict[str, Any] = getattr(section, name).model_dump(exclude_none=True)
        per_signal: dict[str, dict[int, Any]] = {}
        for col, key in enumerate(signal_keys):
            override: DetectorOverrides | None = section.signals.get(key)
            if override is None:
                continue
            for param, value in getattr(override, name).model_dump(exclude_none=True).items():
                per_signal.setdefault(param, {})[col] = value
        for param in per_signal:
            if name == "robust" and param in ("window", "every"):
                raise ConfigError(
                    [f"anomaly.signals: robust.{param} is one schedule for all signals: set it under anomaly.robust"]
                )
        for param, values in per_signal.items():
            default = base.get(param, _default(name, param))
            array = np.full(len(signal_keys), float(default))
            for col, value in values.items():
                array[col] = value
            base[param] = array
        params[name] = base
    return AnomalySettings(
        DetectorSettings(tuple(section.detectors), params),
        section.alarm.on_above,
        section.alarm.off_below,
        section.alarm.on_samples,
        section.alarm.off_samples,
        section.smoothing,
    )


def unknown_signal_keys(section: AnomalySection, known: set[str]) -> list[str]:
    return sorted(set(section.signals) - known)


def _default(detector: str, param: str) -> float:
    import inspect  # noqa: PLC0415

    from analytics.detectors import REGISTRY  # noqa: PLC0415

    cls = REGISTRY["level" if detector == "level" else detector]
    value = inspect.signature(cls.__init__).parameters[param].default
    if value is None and (detector, param) == ("level", "var_alpha"):
        return float(_default("level", "alpha")) / 5
    return float(value)
