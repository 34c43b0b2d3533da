"""Value types shared by agent.yaml and OEE configuration files: durations, tags, strict models."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d)?\s*$")


def parse_duration(value: Any) -> float:
    """Seconds from ``2s``, ``500ms``, ``5m``, ``1h``, ``1d`` or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 2s, 500ms or 5m")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return float(match.group(1)) * _UNITS[match.group(2) or "s"]
    raise ValueError(f"expected a duration like 2s, 500ms or 5m, not {value!r}")


Duration = Annotated[float, BeforeValidator(parse_duration)]
TagValue = Annotated[str, Field(min_length=1, max_length=128)]
StateName = Literal["running", "idle", "down", "setup", "planned_stop"]


class Strict(BaseModel):
    """Unknown fields are errors; models are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
