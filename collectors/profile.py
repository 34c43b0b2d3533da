"""What every device profile is: a device *model* described as data (pydantic, extra fields forbidden).

A profile says which registers or nodes a model has, how to decode them, and their units. Which
machine an instance is, where it is reached and what its signals mean for OEE is the agent
configuration's job, not the profile's. Each protocol's profile model lives in its collector's
folder (``collectors/<protocol>/profile.py``), subclasses :class:`ProfileBase` with a
``protocol: Literal[...]`` discriminator, and lists its signals through :meth:`signals`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
PROFILE_NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
#: Printable text of one line: what a tag value can hold (line protocol has no escape for a newline).
ONE_LINE_PATTERN = r"^[^\x00-\x1f\x7f]*$"
#: A signal's engineering unit as people write it (``°C``, ``mm/s``, ``kWh``), written as the raw
#: points' ``unit`` tag; empty for none.
Unit = Annotated[str, Field(max_length=32, pattern=ONE_LINE_PATTERN)]

SignalKind = Literal["analog", "state", "counter", "energy", "text"]


class Strict(BaseModel):
    """Unknown fields are errors; models are immutable; numbers are finite (``.nan`` and ``.inf``
    are refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, use_attribute_docstrings=True)


#: The largest magnitude a profile's numbers (offsets, limits) may have. A reading decoded with
#: larger ones is no longer a measurement (float32's largest value, 3.4e38, is what broken sensors send).
MAX_MAGNITUDE = 1e12


def _measured(value: float) -> float:
    if abs(value) > MAX_MAGNITUDE:
        raise ValueError(f"{value:g} is not a measurement in any unit: keep it within ±{MAX_MAGNITUDE:g}")
    return value


def _scale(value: float) -> float:
    if value == 0:
        raise ValueError("a scale of 0 makes every reading equal to the offset: use 1 for no scaling")
    if not 1 / MAX_MAGNITUDE <= abs(value) <= MAX_MAGNITUDE:
        raise ValueError(
            f"scale {value:g} is out of reach: keep its size between {1 / MAX_MAGNITUDE:g} and {MAX_MAGNITUDE:g}"
        )
    return value


#: A number in a signal's unit (an offset, an engineering limit): finite and within ``MAX_MAGNITUDE``.
Measured = Annotated[float, AfterValidator(_measured)]
#: A multiplier from raw to engineering units: not 0, its size within 1e-12 .. 1e12.
Scale = Annotated[float, AfterValidator(_scale)]


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """One signal of a device model: its name, what it means, its unit and engineering limits.

    ``low`` and ``high`` are in ``unit``; None when the profile gives none. ``kind`` decides the
    defaults: ``analog`` signals are anomaly-scored, ``state`` and ``counter`` feed OEE roles,
    ``text`` values (strings) are stored but never scored.
    """

    name: str
    kind: str = "analog"
    unit: str = ""
    low: float | None = None
    high: float | None = None


class ProfileBase(Strict):
    """Fields every profile has. Subclasses add ``protocol: Literal[...]`` and their items."""

    name: Annotated[str, Field(pattern=PROFILE_NAME_PATTERN)]
    description: str = ""
    vendor: str = ""

    def signals(self) -> list[SignalSpec]:
        """The model's signals, in the order its collector indexes them (0..n-1)."""
        raise NotImplementedError

    @classmethod
    def lint(cls, data: dict[str, Any]) -> list[Finding]:
        """Problems across items (repeated names, overlaps) and doubtful values, found in the raw
        profile ``data`` even where some items do not validate, so one check reports them all."""
        return []


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem of a profile at ``loc`` (a path into the YAML file); a warning still loads."""

    loc: tuple[str | int, ...]
    message: str
    warning: bool = False


def signal_names(profile: ProfileBase) -> list[str]:
    """Signal names in the order collectors index them."""
    return [s.name for s in profile.signals()]


def builtin_profile_dir() -> Path:
    """Folder of the profiles shipped with the package."""
    return Path(__file__).with_name("profiles")
