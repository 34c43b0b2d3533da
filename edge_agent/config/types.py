"""Value types shared by agent.yaml and OEE configuration files: durations, tags, strict models."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

# Durations are shared with the collectors' profiles: they live beside them, as does the strict
# base model (unknown fields refused, immutable, finite numbers only).
from edge_agent.collectors.durations import FROM_FILE, Duration, parse_duration
from edge_agent.collectors.profile import Strict

TagValue = Annotated[str, Field(min_length=1, max_length=128)]
StateName = Literal["running", "idle", "down", "setup", "planned_stop"]


__all__ = ["FROM_FILE", "Duration", "StateName", "Strict", "TagValue", "parse_duration"]
