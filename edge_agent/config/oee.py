"""A machine's ``oee:`` section and the shift schedule, as configured in YAML.

The same section is used by a device in ``agent.yaml`` and, alone in its file, by
``edge-agent oee replay --config MACHINE.yaml``. :func:`machine_config` and
:func:`work_schedule` turn it into what :mod:`analytics.oee` computes with.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator

from edge_agent.analytics.oee import (
    DOWN,
    ENERGY_KIND,
    GOOD_KIND,
    IDLE,
    PLANNED_STOP,
    REJECT_KIND,
    RUNNING,
    SETUP,
    TOTAL_KIND,
    MachineOeeConfig,
)
from edge_agent.analytics.schedule import Break, Shift, WorkSchedule
from edge_agent.analytics.windows import ShiftWindows
from edge_agent.config.types import FROM_FILE, Duration, StateName, Strict, TagValue
from edge_agent.config.yaml_source import ConfigError, YamlDocument, load_yaml, validation_problems

CATEGORY = {"running": RUNNING, "idle": IDLE, "down": DOWN, "setup": SETUP, "planned_stop": PLANNED_STOP}
COUNTER_KIND = {"total": TOTAL_KIND, "good": GOOD_KIND, "reject": REJECT_KIND}


class StateRole(Strict):
    signal: str
    """the profile's signal holding the machine's state code"""
    map: Annotated[dict[Annotated[int, Field(ge=0, le=255)], StateName], Field(min_length=1)]
    """device code to state: running, idle, down, setup, planned_stop"""
    default: StateName = "down"
    """the state of a code the map does not name"""


class CounterRole(Strict):
    signal: str
    """the profile's counter signal"""
    modulus: Annotated[int, Field(ge=2)] | None = Field(None, description="wraps to 0 after modulus - 1")


class ShiftEntry(Strict):
    name: TagValue
    """the shift's name"""
    start: dt.time
    """local time it starts, HH:MM"""
    end: dt.time
    """local time it ends, HH:MM (may be past midnight)"""


class BreakEntry(Strict):
    start: dt.time
    """local time the break starts, HH:MM"""
    end: dt.time
    """local time it ends, HH:MM"""


class ShiftSchedule(Strict):
    timezone: str
    """IANA time zone of the plant, e.g. Asia/Shanghai"""
    schedule: Annotated[list[ShiftEntry], Field(min_length=1)]
    """the shifts of a day"""
    breaks: list[BreakEntry] = Field(default_factory=list, description="planned downtime inside shifts, daily")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Asia/Shanghai") from None
        return value


class OeeSection(Strict):
    state: StateRole
    """which signal says the machine's state, and its codes"""
    counters: Annotated[dict[Literal["total", "good", "reject"], CounterRole], Field(min_length=1)]
    """part counters: any of total, good, reject"""
    energy: CounterRole | None = None
    """an energy counter (kWh) of the machine"""
    ideal_cycle_time: Annotated[Duration, Field(gt=0)]
    """the machine's ideal time per part (s)"""
    microstop_threshold: Annotated[Duration, Field(ge=0, description="shorter idle/down episodes: micro-stops")] = 0.0
    stale_after: Annotated[Duration, Field(gt=0)] | None = Field(
        None, description="silence after which the state is unknown; default 3 x poll interval, at least 10 s"
    )
    counter_margin: Annotated[float, Field(ge=1)] = Field(
        2.0, description="a count increase is believed up to (elapsed / ideal_cycle_time + 1) x counter_margin"
    )
    shifts: ShiftSchedule | None = Field(None, description="replay files only; the agent's is analytics.shifts")


def default_stale_after(poll_interval_s: float) -> float:
    """Silence (s) after which a held state turns unknown: 3 polls, at least 10 s."""
    return max(3.0 * poll_interval_s, 10.0)


def machine_config(section: OeeSection, poll_interval_s: float) -> MachineOeeConfig:
    """The engine's settings for one machine whose device is polled every ``poll_interval_s``."""
    counters = {COUNTER_KIND[k]: float(c.modulus or 0) for k, c in section.counters.items()}
    if section.energy is not None:
        counters[ENERGY_KIND] = float(section.energy.modulus or 0)
    return MachineOeeConfig(
        {code: CATEGORY[name] for code, name in section.state.map.items()},
        CATEGORY[section.state.default],
        section.ideal_cycle_time,
        section.stale_after if section.stale_after is not None else default_stale_after(poll_interval_s),
        counters,
        section.microstop_threshold,
        section.counter_margin,
    )


def shift_list(shifts: ShiftSchedule) -> list[Shift]:
    """The configured shifts, as the analytics take them."""
    return [Shift(s.name, s.start, s.end) for s in shifts.schedule]


def shift_windows(shifts: ShiftSchedule) -> ShiftWindows:
    """One window per shift instance, in the schedule's time zone."""
    return ShiftWindows(shift_list(shifts), shifts.timezone)


def work_schedule(shifts: ShiftSchedule | None) -> WorkSchedule:
    """Shifts and breaks; without a schedule every instant is scheduled (UTC)."""
    if shifts is None:
        return WorkSchedule(None, [])
    return WorkSchedule(
        shift_list(shifts),
        [Break(b.start, b.end) for b in shifts.breaks],
        shifts.timezone,
    )


def load_machine_oee(path: Path) -> tuple[OeeSection, YamlDocument]:
    """A file holding a machine's ``oee:`` section (or the section's fields at the top)."""
    doc = load_yaml(path)
    data = doc.data
    at: tuple[str, ...] = ()
    if isinstance(data, dict) and set(data) == {"oee"}:
        data, at = data["oee"], ("oee",)
    if not isinstance(data, dict):
        raise ConfigError([doc.problem(at, "expected the oee: section (state, counters, ideal_cycle_time, ...)")])
    try:
        return OeeSection.model_validate(data, context=FROM_FILE), doc
    except ValidationError as exc:
        raise ConfigError(validation_problems(doc, exc, prefix=at)) from None
