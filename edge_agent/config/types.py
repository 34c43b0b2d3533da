"""Value types shared by agent.yaml and OEE configuration files: durations, tags, strict models."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# Durations are shared with the collectors' profiles: they live beside them.
from collectors.durations import FROM_FILE, Duration, parse_duration

TagValue = Annotated[str, Field(min_length=1, max_length=128)]
StateName = Literal["running", "idle", "down", "setup", "planned_stop"]


class Strict(BaseModel):
    """Unknown fields are errors; models are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


__all__ = ["FROM_FILE", "Duration", "StateName", "Strict", "TagValue", "parse_duration"]
