"""The ``kpis:`` section of ``agent.yaml``: scope, T, reporting interval and baselines (docs/kpis.md)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from edge_agent.config.types import Duration, Strict


class BaselineSection(Strict):
    """A frozen window the current figures are compared with; fixed values override it."""

    start: dt.datetime | None = Field(None, description="RFC 3339 with offset; the window's data is summed")
    end: dt.datetime | None = None
    """end of the baseline window, RFC 3339 with offset"""
    energy_per_good_kwh: Annotated[float, Field(gt=0)] | None = None
    """kWh per good part before the project"""
    defect_rate: Annotated[float, Field(ge=0, le=1)] | None = None
    """rejects per part before the project (0..1)"""
    throughput_per_h: Annotated[float, Field(gt=0)] | None = None
    """parts per hour of production before the project"""

    @model_validator(mode="after")
    def _window(self) -> BaselineSection:
        if (self.start is None) != (self.end is None):
            raise ValueError("a baseline window needs both start and end")
        if self.start is not None and self.end is not None:
            if self.start.tzinfo is None or self.end.tzinfo is None:
                raise ValueError("baseline start and end need a UTC offset, e.g. 2026-01-01T00:00:00+08:00")
            if self.end <= self.start:
                raise ValueError("baseline end must be after its start")
        fixed = (self.energy_per_good_kwh, self.defect_rate, self.throughput_per_h)
        if self.start is None and all(v is None for v in fixed):
            raise ValueError("give a baseline window (start, end) or fixed values (energy_per_good_kwh, ...)")
        return self


class KpiSection(Strict):
    every: Annotated[Duration, Field(ge=1, description="reporting interval")] = 60.0
    seen_within: Annotated[Duration, Field(gt=0, description="T: a device counts if seen within T")] = 3600.0
    scope: list[str] | None = Field(None, description="device names in scope; default: every device")
    timezone: str | None = Field(None, description="calendar days; default: the shifts' time zone, else UTC")
    energy_meters: list[str] = Field(default_factory=list, description="device.signal kWh counters of the workshop")
    baseline: BaselineSection | None = None
    """the figures before the project, to compare with"""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Asia/Shanghai") from None
        return value
