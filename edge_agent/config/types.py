"""Value types shared by agent.yaml and OEE configuration files: durations, tags, strict models."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

# Durations are shared with the collectors' profiles: they live beside them, as does the strict
# base model (unknown fields refused, immutable, finite numbers only).
from edge_agent.collectors.durations import FROM_FILE, Duration, parse_duration
from edge_agent.collectors.profile import ONE_LINE_PATTERN, Strict

#: A tag value (site, line, machine, a device's own tags): one printable line, 1..128 characters.
TagValue = Annotated[str, Field(min_length=1, max_length=128, pattern=ONE_LINE_PATTERN)]
#: A device's own tag name: what InfluxDB and Grafana take without quoting.
TAG_KEY_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
#: A device's name in agent.yaml (a tag value, and part of file and metric names).
DEVICE_NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
#: An endpoint: a URL with its scheme.
ENDPOINT_PATTERN = r"^[A-Za-z][A-Za-z0-9+.-]*://"
#: Tags the agent sets itself; a device's own ``tags`` may not use them.
RESERVED_TAGS = frozenset(
    {"site", "workshop", "agent", "line", "machine", "device", "signal", "unit", "window", "detector"}
)
StateName = Literal["running", "idle", "down", "setup", "planned_stop"]


__all__ = [
    "DEVICE_NAME_PATTERN",
    "ENDPOINT_PATTERN",
    "FROM_FILE",
    "RESERVED_TAGS",
    "TAG_KEY_PATTERN",
    "Duration",
    "StateName",
    "Strict",
    "TagValue",
    "parse_duration",
]
