"""Durations in configuration files and profiles: ``2s``, ``500ms``, ``5m``, ``1h``, ``1d``, and
sums of them as Go and Telegraf write them (``1h30m``, ``2m 30s``).

A unit is required in files (``1`` could be seconds or milliseconds); models built from Python
code may pass a number of seconds. A duration is 0, or from 1 ms (``MIN_S``: shorter polls are a
busy loop) to 366 days (``MAX_S``).

>>> parse_duration("500ms"), parse_duration("1.5 m"), parse_duration("1h30m"), parse_duration("2m 30s")
(0.5, 90.0, 5400.0, 150.0)
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, ValidationInfo

#: The shortest and the longest duration besides 0 (seconds).
MIN_S, MAX_S = 0.001, 366 * 86400.0
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d)?\s*$")
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d)\s*")


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
    if isinstance(value, str) and _PART.sub("", value.strip()) == "" and value.strip():
        return within_reach(sum(float(n) * _UNITS[u] for n, u in _PART.findall(value)))
    raise ValueError(f"expected a duration like 2s, 500ms, 5m or 1h30m, not {value!r}")


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


def format_duration(seconds: float) -> str:
    """``seconds`` as a file would write it (the unit that keeps it shortest).

    >>> format_duration(0.5), format_duration(90.0), format_duration(5400.0), format_duration(0.0)
    ('500ms', '90s', '90m', '0s')
    """
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    if seconds and seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


#: Seconds in Python; in JSON (``config show``, fingerprints) the text a file would hold (``90s``).
Duration = Annotated[
    float, BeforeValidator(_duration_field), PlainSerializer(format_duration, return_type=str, when_used="json")
]
