"""Durations in configuration files and profiles: ``2s``, ``500ms``, ``5m``, ``1h``, ``1d``.

A unit is required in files (``1`` could be seconds or milliseconds); models built from Python
code may pass a number of seconds.

>>> parse_duration("500ms"), parse_duration("1.5 m")
(0.5, 90.0)
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationInfo

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
        return float(match.group(1)) * _UNITS[match.group(2) or "s"]
    raise ValueError(f"expected a duration like 2s, 500ms or 5m, not {value!r}")


#: Validation context of files people write: there a duration needs its unit.
FROM_FILE = {"from_file": True}


def _duration_field(value: Any, info: ValidationInfo) -> float:
    """A duration field: from a file (``FROM_FILE`` context) it needs a unit; from Python code a
    number is seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and not (info.context or {}).get("from_file"):
        return float(value)
    return parse_duration(value)


Duration = Annotated[float, BeforeValidator(_duration_field)]
