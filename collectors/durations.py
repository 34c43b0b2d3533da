"""Durations in configuration files and profiles: ``2s``, ``500ms``, ``5m``, ``1h``, ``1d``.

A unit is required in files (``1`` could be seconds or milliseconds); models built from Python
code may pass a number of seconds. A duration is 0, or from 1 ms (``MIN_S``: shorter polls are a
busy loop) to 366 days (``MAX_S``).

>>> parse_duration("500ms"), parse_duration("1.5 m")
(0.5, 90.0)
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationInfo

#: The shortest and the longest duration besides 0 (seconds).
MIN_S, MAX_S = 0.001, 366 * 86400.0
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d)?\s*$")


def parse_duration(value: Any) -> float:
    """Seconds from ``2s``, ``500ms``, ``5m``, ``1h`` or ``1d``; a unit is required (``1`` could be
    seconds or milliseconds), except for ``0``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 2s, 500ms or 5m")
    if isinstance(value, int | float):
        if value == 0:
            return 0.0
        raise ValueError(f"a duration needs a unit: write {value:g}s (or ms, m, h, d)")
    if isinstance(value, str) and (match := _DURATION.match(value)):
        if match.group(2) is None and float(match.group(1)) != 0:
            raise ValueError(f"a duration needs a unit: write {value.strip()}s (or ms, m, h, d)")
        return within_reach(float(match.group(1)) * _UNITS[match.group(2) or "s"])
    raise ValueError(f"expected a duration like 2s, 500ms or 5m, not {value!r}")


def within_reach(seconds: float) -> float:
    """``seconds`` when it is 0 or between ``MIN_S`` and ``MAX_S``; else the fix, as a ValueError."""
    if seconds != 0 and seconds < MIN_S:
        raise ValueError(
            f"{seconds * 1000:g} ms is shorter than 1 ms: write 1ms or more (shorter polls are a busy loop)"
        )
    if seconds > MAX_S:
        raise ValueError(f"{seconds:g} s is longer than 366 days: write a shorter duration")
    return seconds


#: Validation context of files people write: there a duration needs its unit.
FROM_FILE = {"from_file": True}


def _duration_field(value: Any, info: ValidationInfo) -> float:
    """A duration field: from a file (``FROM_FILE`` context) it needs a unit; from Python code a
    number is seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and not (info.context or {}).get("from_file"):
        if not math.isfinite(value):
            raise ValueError("a duration must be a finite number of seconds")
        return within_reach(float(value))
    return parse_duration(value)


Duration = Annotated[float, BeforeValidator(_duration_field)]
