"""The ``anomaly:`` section, derived from the detector registry, and the scorer settings it gives.

Every registered detector (:data:`analytics.detectors.REGISTRY`) contributes one sub-section
named after it, whose fields are the detector's declared parameters (:class:`~analytics.detectors.Param`):
a new detector module needs nothing here. Parameters overridden for some signals become arrays
with one value per signal; the others stay scalars (or the detector's default when not set).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, Field, create_model, field_validator, model_validator

from edge_agent.analytics.anomaly import AnomalySettings
from edge_agent.analytics.detectors import DEFAULT_SET, REGISTRY, DetectorSettings, Param
from edge_agent.config.types import Duration, Strict
from edge_agent.config.yaml_source import ConfigError


class AlarmParams(Strict):
    """Hysteresis on the combined score (named so: YAML reads a bare ``on:`` as true)."""

    on_above: Annotated[float, Field(gt=0)] = 1.0
    """an alarm turns on when the combined score is above this (1 = at a detector's threshold)"""
    off_below: Annotated[float, Field(ge=0)] = 0.5
    """and off when it is below this"""
    on_samples: Annotated[int, Field(ge=1)] = 1
    """samples above on_above before the alarm turns on"""
    off_samples: Annotated[int, Field(ge=1)] = 5
    """samples below off_below before it turns off"""
    cooldown: Annotated[
        int, Field(ge=0, description="samples after an alarm starts before the signal may alarm again")
    ] = 100
    hold_level: Annotated[float, Field(gt=0, le=1000)] = 2.0
    """an alarm lasts while the signal's smoothed level is this far from its normal (in sds of that level);
    a machine's alarm holds the normal of those of its signals this far from it"""
    hold_spread: Annotated[float, Field(gt=1, le=1000)] = 3.0
    """or while its smoothed mean squared residual is above this (1 is normal noise)"""
    accept_after: Annotated[int, Field(ge=0)] = 2000
    """samples in alarm after which what a signal does is taken as its new normal and learnt afresh (0: never)"""
    hold_min: Annotated[int, Field(ge=0)] = 100
    """samples an alarm started by a sum (shift, deviation, variance, departure: a lasting change) lasts at least"""
    departure: Annotated[float, Field(ge=0, le=1000)] = 6.0
    """a signal whose smoothed level is this many sds from its normal scores 1 (detector departure; 0: off)"""
    departure_lasting: Annotated[float, Field(ge=0, le=1000)] = 3.0
    """so does one whose smoothed level stays this many sds away for departure_samples (a slow drift; 0: off)"""
    departure_samples: Annotated[int, Field(ge=8, le=100_000)] = 64
    """samples (rounded up to whole chunks of 8) departure_lasting must last"""

    @model_validator(mode="after")
    def _hysteresis(self) -> AlarmParams:
        if self.off_below >= self.on_above:
            raise ValueError("off_below must be lower than on_above (hysteresis)")
        return self


class AnomalyBase(Strict):
    """The fields of ``anomaly:`` that do not depend on which detectors are registered."""

    detectors: list[str] = Field(default_factory=lambda: list(DEFAULT_SET))
    """the detectors that score every analog signal (edge-agent anomaly params)"""
    alarm: AlarmParams = Field(default_factory=AlarmParams)
    """when alarms turn on and off"""
    smoothing: Annotated[float, Field(gt=0, le=1)] | None = None
    """EWMA rate applied to the combined score (none: no smoothing)"""
    baselines_per_state: bool = Field(
        True, description="each machine state (running, idle, ...) keeps its own normal for the machine's signals"
    )
    score_interval: Annotated[Duration, Field(ge=0)] = Field(
        1.0,
        description="write each signal's highest score per interval (s); 0 writes a score for every sample",
    )
    score_wait: Annotated[Duration, Field(ge=0, le=60)] = Field(
        2.0,
        description=(
            "longest a reading waits to be scored with others (s): readings are scored together once there are"
            " two per scored signal or the oldest has waited this long; 0 scores at every tick"
        ),
    )
    signals: dict[str, Any] = Field(default_factory=dict)
    """per-signal overrides, keyed device.signal"""
    machine_score: bool = True
    """score each machine's signals together too (_machine score and alarm; replay: the columns are one machine)"""

    @field_validator("detectors")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in REGISTRY]
        if unknown:
            raise ValueError(f"unknown detectors {unknown}: choose from {', '.join(sorted(REGISTRY))}")
        return names

    def overrides(self, detector: str) -> dict[str, Any]:
        """Parameters set for ``detector`` for every signal (unset ones left out)."""
        section: BaseModel | None = getattr(self, detector, None)
        return {} if section is None else section.model_dump(exclude_none=True)

    def signal_overrides(self, key: str, detector: str) -> dict[str, Any]:
        per_signal: BaseModel | None = self.signals.get(key)
        section: BaseModel | None = getattr(per_signal, detector, None) if per_signal is not None else None
        return {} if section is None else section.model_dump(exclude_none=True)


def _field(param: Param) -> tuple[Any, Any]:
    base: Any = int if param.integer else float
    bounds = {k: getattr(param, k) for k in ("gt", "ge", "lt", "le") if getattr(param, k) is not None}
    # The default is the detector's (or derived from its other parameters): shown, not set here.
    shown: dict[str, Any] = {"default": param.default if param.default is not None else "derived"}
    return Annotated[base, Field(**bounds)] | None, Field(None, description=param.doc, json_schema_extra=shown)


@lru_cache(maxsize=8)
def _models(names: tuple[str, ...]) -> tuple[type[BaseModel], type[AnomalyBase]]:
    per_detector: dict[str, Any] = {}
    for name in names:
        params = {p: _field(decl) for p, decl in REGISTRY[name].params.items()}
        model = create_model(f"{name.title()}Params", __base__=Strict, **params)  # type: ignore[call-overload]
        summary = (REGISTRY[name].__doc__ or "").strip().split("\n", 1)[0]
        about = f"the {name} detector's parameters: {summary}" if summary else f"the {name} detector's parameters"
        per_detector[name] = (model, Field(default_factory=model, description=about))
    overrides: type[BaseModel] = create_model("DetectorOverrides", __base__=Strict, **per_detector)
    signals_type: Any = dict[str, overrides]
    section: type[AnomalyBase] = create_model(
        "AnomalySection",
        __base__=AnomalyBase,
        signals=(signals_type, Field(default_factory=dict, description="per-signal overrides, keyed device.signal")),
        **per_detector,
    )
    return overrides, section


def anomaly_section_model() -> type[AnomalyBase]:
    """The ``anomaly:`` model for the detectors registered now."""
    return _models(tuple(sorted(REGISTRY)))[1]


def anomaly_settings(section: AnomalyBase, signal_keys: list[str]) -> AnomalySettings:
    """Settings for signals ``signal_keys`` (``device.signal``) in column order."""
    params: dict[str, dict[str, Any]] = {}
    for name, cls in REGISTRY.items():
        base: dict[str, Any] = section.overrides(name)
        per_signal: dict[str, dict[int, Any]] = {}
        for col, key in enumerate(signal_keys):
            for param, value in section.signal_overrides(key, name).items():
                per_signal.setdefault(param, {})[col] = value
        for param, values in per_signal.items():
            declared = cls.params[param]
            if not declared.per_signal:
                raise ConfigError(
                    [f"anomaly.signals: {name}.{param} is one value for all signals: set it under anomaly.{name}"]
                )
            default = base.get(param, declared.default_for(base))
            if default is None:
                raise ValueError(f"{name}.{param} has no default")
            array = np.array(np.broadcast_to(np.asarray(default, np.float64), (len(signal_keys),)))
            for col, value in values.items():
                array[col] = value
            base[param] = array
        if base:
            params[name] = base
    return AnomalySettings(
        DetectorSettings(tuple(section.detectors), params),
        section.alarm.on_above,
        section.alarm.off_below,
        section.alarm.on_samples,
        section.alarm.off_samples,
        section.smoothing,
        section.alarm.cooldown,
        hold_level=section.alarm.hold_level,
        hold_spread=section.alarm.hold_spread,
        accept_after=section.alarm.accept_after,
        departure=section.alarm.departure,
        departure_lasting=section.alarm.departure_lasting,
        departure_samples=section.alarm.departure_samples,
        hold_min=section.alarm.hold_min,
        machine_score=section.machine_score,
    )


def unknown_signal_keys(section: AnomalyBase, known: set[str]) -> list[str]:
    return sorted(set(section.signals) - known)
